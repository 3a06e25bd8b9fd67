"""The chart of accounts (French PCG) the plans are booked on, and what drives each line.

Amounts are derived, never drawn: a line is a rate times a driver of the school
(students, new students, classes, FTE, tuition) times the year's price index, with a
few percent of jitter. The app's tables CHECK that no amount is negative, so no rate
is: a reduction would be a smaller line or an account of its own, never a negative one.
"""

from __future__ import annotations

# "Fixed" costs (premises, management) are given for EFIR's size; a smaller school has
# smaller premises and team: they scale with (students / EFIR_STUDENTS) ** FIXED_COST_ELASTICITY.
FIXED_COST_ELASTICITY = 0.7

# Revenue accounts. amount = rate x basis x price index (tuition: share of the tuition).
# basis: tuition | students | new_students | returning_students | exam_students |
# size (students / 1,800: scales a fixed amount with the school).
REVENUE_ACCOUNTS: tuple[tuple[str, str, str, int | None, str, float], ...] = (
    # account, description, category, trimester, basis, rate
    ("70111", "Frais de scolarité - 1er trimestre", "tuition", 1, "tuition", 0.40),
    ("70112", "Frais de scolarité - 2e trimestre", "tuition", 2, "tuition", 0.30),
    ("70113", "Frais de scolarité - 3e trimestre", "tuition", 3, "tuition", 0.30),
    ("70201", "Frais de dossier d'inscription", "fees", None, "new_students", 1_600),
    ("70202", "Droit annuel d'inscription (DAI)", "fees", None, "students", 3_200),
    ("70301", "Droits de première inscription", "fees", None, "new_students", 5_000),
    ("70302", "Frais de réinscription", "fees", None, "returning_students", 500),
    ("70611", "Restauration scolaire", "other", None, "students", 1_050),
    ("70621", "Transport scolaire", "other", None, "students", 750),
    ("70631", "Activités périscolaires", "other", None, "students", 300),
    ("70811", "Droits d'examens (DNB, baccalauréat)", "other", None, "exam_students", 900),
    ("70821", "Locations de salles et d'installations", "other", None, "size", 120_000),
    ("76811", "Produits financiers", "other", None, "size", 180_000),
)
# revenue_plans.calculation_driver of each basis; a "size" line is entered by hand
# (is_calculated false, no driver).
REVENUE_DRIVERS: dict[str, str | None] = {
    "tuition": "enrollment x tariff",
    "students": "enrollment",
    "new_students": "new students",
    "returning_students": "re-enrolled students",
    "exam_students": "exam candidates",
    "size": None,
}

# Non-teaching staff: FTE = base x size factor + students / students_per_fte (ATSEM: one
# per MAT class).
STAFF_ACCOUNTS: tuple[tuple[str, str, float, int | None, int], ...] = (
    # account, description, base FTE, students per FTE (None: ATSEM), yearly cost per FTE
    ("64121", "Rémunérations - direction", 2.0, 600, 520_000),
    ("64122", "Rémunérations - secrétariat et administration", 1.0, 120, 150_000),
    ("64123", "Rémunérations - comptabilité et finances", 1.0, 450, 210_000),
    ("64124", "Rémunérations - ressources humaines et admissions", 1.0, 700, 170_000),
    ("64125", "Rémunérations - communication et relations avec les familles", 1.0, 900, 160_000),
    ("64131", "Rémunérations - ATSEM", 0.0, None, 95_000),
    ("64132", "Rémunérations - vie scolaire et surveillance", 1.0, 100, 110_000),
    ("64133", "Rémunérations - maintenance, entretien et sécurité", 3.0, 90, 75_000),
    ("64134", "Rémunérations - informatique", 1.0, 600, 220_000),
    ("64135", "Rémunérations - infirmerie", 1.0, 1000, 180_000),
)

# Social charges: FTE covered (local staff, all staff or AEFE teachers) x yearly cost.
SOCIAL_ACCOUNTS: tuple[tuple[str, str, str, int], ...] = (
    ("64511", "Cotisations sociales GOSI (personnels locaux)", "local", 24_000),
    ("64521", "Assurance médicale des personnels", "all", 14_000),
    ("64531", "Provision pour indemnités de fin de service", "local", 10_000),
    ("64541", "Contribution pensions AEFE (part établissement)", "aefe", 42_000),
)

# Operating costs: amount = (fixed x size factor + per student x students + per class x classes)
# x price index + share of tuition; category gives the consolidation bucket.
OPERATING_ACCOUNTS: tuple[tuple[str, str, str, int, int, int, float], ...] = (
    # account, description, category, fixed, per student, per class, share of tuition
    ("60221", "Fournitures scolaires", "supplies", 20_000, 650, 0, 0.0),
    ("60225", "Manuels scolaires et ressources pédagogiques", "supplies", 0, 380, 0, 0.0),
    ("60226", "Fournitures administratives", "supplies", 60_000, 60, 0, 0.0),
    ("60228", "Produits d'entretien", "supplies", 30_000, 70, 0, 0.0),
    ("60611", "Électricité et climatisation", "utilities", 250_000, 1_200, 0, 0.0),
    ("60612", "Eau", "utilities", 40_000, 160, 0, 0.0),
    ("62610", "Télécommunications et internet", "utilities", 90_000, 45, 0, 0.0),
    ("61521", "Entretien et réparations des bâtiments", "maintenance", 150_000, 420, 0, 0.0),
    ("61551", "Maintenance des équipements", "maintenance", 40_000, 0, 3_000, 0.0),
    ("61561", "Maintenance informatique", "maintenance", 80_000, 120, 0, 0.0),
    ("61611", "Assurance multirisque des locaux", "insurance", 180_000, 120, 0, 0.0),
    ("61621", "Assurance responsabilité civile et scolaire", "insurance", 40_000, 60, 0, 0.0),
    ("61321", "Loyer des locaux scolaires", "other", 2_800_000, 2_900, 0, 0.0),
    ("62261", "Honoraires (audit, conseil juridique)", "other", 220_000, 40, 0, 0.0),
    ("62281", "Sous-traitance nettoyage et gardiennage", "other", 200_000, 250, 0, 0.0),
    ("62411", "Transport scolaire sous-traité", "other", 0, 420, 0, 0.0),
    ("62511", "Voyages, missions et sorties pédagogiques", "other", 50_000, 110, 0, 0.0),
    ("62810", "Formation continue des personnels", "other", 60_000, 0, 1_800, 0.0),
    ("62850", "Participation financière complémentaire AEFE", "other", 0, 0, 0, 0.06),
)

# Capital expenditure: quantity = base + per x basis (classes | secondary_classes |
# students | teachers); bought in the summer before the school year (month). The
# category is the consolidation bucket (capex_<category>).
CAPEX_ACCOUNTS: tuple[tuple[str, str, str, str, float, float, int, int, int], ...] = (
    # account, description, category, basis, base qty, per basis, unit cost,
    # useful life (years), month
    ("20510", "Logiciel de gestion scolaire (ERP)", "software", "students", 1, 0.0, 180_000, 3, 7),
    ("20520", "Licences de logiciels pédagogiques", "software", "classes", 0, 1.0, 1_800, 3, 8),
    ("21350", "Aménagement et rénovation des locaux (m²)", "building", "students", 0, 0.35,
     1_200, 20, 7),
    ("21541", "Matériel de laboratoire de sciences", "equipment", "secondary_classes", 0, 0.3,
     9_000, 7, 8),
    ("21543", "Tableaux numériques interactifs", "equipment", "classes", 0, 0.15, 16_000, 5, 8),
    ("21550", "Équipements sportifs", "equipment", "students", 2, 1 / 600, 25_000, 7, 7),
    ("21831", "Ordinateurs portables enseignants", "it", "teachers", 0, 0.25, 5_200, 3, 8),
    ("21832", "Tablettes élèves", "it", "students", 0, 0.04, 2_400, 3, 8),
    ("21833", "Serveurs et équipements réseau", "it", "students", 2, 0.0, 45_000, 5, 7),
    ("21841", "Mobilier de classe (salle complète)", "furniture", "classes", 0, 0.25, 25_000,
     10, 7),
    ("21842", "Mobilier administratif", "furniture", "students", 6, 1 / 300, 3_500, 10, 7),
)  # fmt: skip

assert all(rate >= 0 for *_, rate in REVENUE_ACCOUNTS)
assert set(REVENUE_DRIVERS) >= {basis for *_, basis, _ in REVENUE_ACCOUNTS}
assert all(1 <= row[7] <= 50 for row in CAPEX_ACCOUNTS)  # capex_plans.useful_life_years
