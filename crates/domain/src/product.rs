//! Benefit packages (API.md §5 Products): which layer a product pays in, which share of which care
//! it pays, and the household and timing rules its members live by. Products are versioned by
//! effective date because national rules change often and a claim is priced with the version in
//! force on its service date.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::money::{BasisPoints, Xof, MAX_XOF};
use crate::organization::OrgKind;

/// Where a product sits in the coordination of benefits (API.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// A national scheme's share, paid first.
    Base,
    /// A mutuelle's top-up of what the base scheme left (the *ticket modérateur*).
    Complementary,
    /// A mutuelle as the only payer: with no base share, it prices the whole bill.
    Primary,
}

impl Layer {
    pub const ALL: [Layer; 3] = [Layer::Base, Layer::Complementary, Layer::Primary];

    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Base => "base",
            Layer::Complementary => "complementary",
            Layer::Primary => "primary",
        }
    }

    pub fn parse(s: &str) -> Option<Layer> {
        Layer::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// Schemes sell the base layer, mutuelles the two others.
    pub fn suits(self, kind: OrgKind) -> bool {
        matches!(
            (self, kind),
            (Layer::Base, OrgKind::Scheme) | (Layer::Complementary | Layer::Primary, OrgKind::Mutuelle)
        )
    }

    /// The mutuelle layers: funded by the members' own contributions (so arrears matter) and
    /// bounded by the product's annual ceiling. A base coverage is the scheme's business: it
    /// suspends the coverage itself when its contributions lapse.
    pub fn is_mutuelle_layer(self) -> bool {
        !matches!(self, Layer::Base)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CareLevel {
    HealthPost,
    HealthCenter,
    Hospital,
    UniversityHospital,
}

impl CareLevel {
    pub const ALL: [CareLevel; 4] = [
        CareLevel::HealthPost,
        CareLevel::HealthCenter,
        CareLevel::Hospital,
        CareLevel::UniversityHospital,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CareLevel::HealthPost => "health_post",
            CareLevel::HealthCenter => "health_center",
            CareLevel::Hospital => "hospital",
            CareLevel::UniversityHospital => "university_hospital",
        }
    }

    pub fn parse(s: &str) -> Option<CareLevel> {
        CareLevel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Consultation,
    Hospitalization,
    Pharmacy,
    Laboratory,
    Imaging,
    Maternity,
    Surgery,
    Dental,
    Optical,
    Emergency,
}

impl Category {
    pub const ALL: [Category; 10] = [
        Category::Consultation,
        Category::Hospitalization,
        Category::Pharmacy,
        Category::Laboratory,
        Category::Imaging,
        Category::Maternity,
        Category::Surgery,
        Category::Dental,
        Category::Optical,
        Category::Emergency,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Consultation => "consultation",
            Category::Hospitalization => "hospitalization",
            Category::Pharmacy => "pharmacy",
            Category::Laboratory => "laboratory",
            Category::Imaging => "imaging",
            Category::Maternity => "maternity",
            Category::Surgery => "surgery",
            Category::Dental => "dental",
            Category::Optical => "optical",
            Category::Emergency => "emergency",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// One line of a product's rate table; an absent care level or category matches any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub care_level: Option<CareLevel>,
    pub category: Option<Category>,
    pub rate_bp: BasisPoints,
}

impl Rule {
    /// A rule that names a category never matches a question that names none: an eligibility
    /// check without a category asks "is this care level covered at all?", and only a rule
    /// valid for every category answers that without guessing which care the patient will get.
    pub fn matches(&self, care_level: CareLevel, category: Option<Category>) -> bool {
        let level_ok = self.care_level.is_none_or(|l| l == care_level);
        let category_ok = match (self.category, category) {
            (None, _) => true,
            (Some(rule), Some(asked)) => rule == asked,
            (Some(_), None) => false,
        };
        level_ok && category_ok
    }
}

/// One version of a product, as in force from `effective_from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductVersion {
    pub product_id: String,
    pub organization: String,
    pub layer: Layer,
    pub name: String,
    pub rules: Vec<Rule>,
    pub annual_ceiling_xof: Option<Xof>,
    pub waiting_period_days: u32,
    pub grace_period_days: u32,
    pub excluded_categories: Vec<Category>,
    pub max_dependants: Option<u32>,
    pub child_max_age: Option<u32>,
    pub effective_from: NaiveDate,
    pub version: u32,
}

impl ProductVersion {
    /// The rate of the first matching rule (API.md §5); `None` = not covered.
    pub fn rate_for(&self, care_level: CareLevel, category: Option<Category>) -> Option<BasisPoints> {
        self.rules
            .iter()
            .find(|r| r.matches(care_level, category))
            .map(|r| r.rate_bp)
    }

    pub fn excludes(&self, category: Category) -> bool {
        self.excluded_categories.contains(&category)
    }

    /// The rate this product actually pays for a care: `None` when no rule matches, when the
    /// category is excluded, or when the matching rule's rate is 0. A 0 % rule is how a product
    /// carves a care out ahead of a catch-all rule, so it counts as "not covered", never as a
    /// coverage that is eligible and pays nothing.
    pub fn paying_rate(&self, care_level: CareLevel, category: Option<Category>) -> Option<BasisPoints> {
        if category.is_some_and(|c| self.excludes(c)) {
            return None;
        }
        self.rate_for(care_level, category).filter(|r| r.value() > 0)
    }
}

/// Whether `next` may follow `versions` (the product's history, the latest last) when created
/// on `today`: the same layer (coverages carry the layer of the product they were created under,
/// so it cannot change beneath them), and an `effective_from` later than that of the version in
/// force today (a past day is a correction from then on, as it always was; claims already priced
/// keep their terms). A version scheduled from `next`'s day or later never takes effect (see
/// [`select_version`]): that is how a mistaken one is corrected.
pub fn check_successor(versions: &[ProductVersion], next: &ProductDraftValid, today: NaiveDate) -> Vec<FieldError> {
    successor_faults(versions, Some(next.layer), Some(next.effective_from), today)
}

/// [`check_successor`] on what a request gave well formed: each rule is judged when its field
/// is known (`None`: not given, or at fault already), whatever the other fields' faults.
pub fn successor_faults(
    versions: &[ProductVersion],
    layer: Option<Layer>,
    effective_from: Option<NaiveDate>,
    today: NaiveDate,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let (Some(layer), Some(latest)) = (layer, versions.iter().max_by_key(|v| v.version)) {
        if layer != latest.layer {
            errors.push(FieldError::new(
                "/layer",
                "layer_changed",
                format!("a product's layer cannot change; this one is {}", latest.layer.as_str()),
                format!(
                    "la couche (layer) d'un produit ne peut pas changer ; ce produit est de couche {}",
                    latest.layer.as_str()
                ),
            ));
        }
    }
    if let (Some(effective_from), Some(current)) = (effective_from, select_version(versions, today)) {
        if effective_from <= current.effective_from {
            errors.push(FieldError::new(
                "/effective_from",
                "not_after_current_version",
                format!(
                    "must be later than the effective_from of the version in force today ({})",
                    current.effective_from
                ),
                format!(
                    "doit être postérieure à l'effective_from de la version en vigueur aujourd'hui ({})",
                    current.effective_from
                ),
            ));
        }
    }
    errors
}

/// The version in force on a date: the highest-numbered one whose `effective_from` is on or
/// before it. A version therefore never takes effect when a later-numbered one starts on or
/// before its own start: it was superseded while still scheduled. `None` when the product had
/// not started yet.
pub fn select_version(versions: &[ProductVersion], on: NaiveDate) -> Option<&ProductVersion> {
    versions
        .iter()
        .filter(|v| v.effective_from <= on)
        .max_by_key(|v| v.version)
}

/// The version in force on `on`, or before the product starts, the one it starts with: what a
/// registration dated before the start is judged by. `None` only without any version.
pub fn select_version_or_first(versions: &[ProductVersion], on: NaiveDate) -> Option<&ProductVersion> {
    select_version(versions, on).or_else(|| {
        let start = versions.iter().map(|v| v.effective_from).min()?;
        select_version(versions, start)
    })
}

/// The version that superseded `version` before it took effect: the lowest-numbered later one
/// starting on or before its start. `None` for a version that takes (or took) effect.
pub fn superseded_by(versions: &[ProductVersion], version: &ProductVersion) -> Option<u32> {
    versions
        .iter()
        .filter(|v| v.version > version.version && v.effective_from <= version.effective_from)
        .map(|v| v.version)
        .min()
}

pub const MAX_NAME_CHARS: usize = 200;
/// 4 care levels × 10 categories plus every wildcard combination is 55 distinct rules; anything
/// far beyond that is a client bug, not a benefit package.
pub const MAX_RULES: usize = 100;
/// Ten years: longer waiting or grace periods are typing errors, not policies.
pub const MAX_PERIOD_DAYS: i64 = 3650;
pub const MAX_CHILD_AGE: i64 = 120;
/// Polygamous households with many children are normal (DOMAIN.md); a hundred is not.
pub const MAX_DEPENDANTS: i64 = 100;

/// One rule as received.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleDraft {
    pub care_level: Option<String>,
    pub category: Option<String>,
    pub rate_bp: Option<i64>,
}

/// The fields of a product create or `PUT` request, as received. Absent `waiting_period_days`,
/// `grace_period_days` and `excluded_categories` mean 0, 0 and none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDraft {
    pub layer: Option<String>,
    pub name: Option<String>,
    pub rules: Option<Vec<RuleDraft>>,
    pub annual_ceiling_xof: Option<i64>,
    pub waiting_period_days: Option<i64>,
    pub grace_period_days: Option<i64>,
    pub excluded_categories: Option<Vec<String>>,
    pub max_dependants: Option<i64>,
    pub child_max_age: Option<i64>,
    /// `YYYY-MM-DD`.
    pub effective_from: Option<String>,
}

/// A product the rules accept; storage gives it an id, its owner and a version number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDraftValid {
    pub layer: Layer,
    pub name: String,
    pub rules: Vec<Rule>,
    pub annual_ceiling_xof: Option<Xof>,
    pub waiting_period_days: u32,
    pub grace_period_days: u32,
    pub excluded_categories: Vec<Category>,
    pub max_dependants: Option<u32>,
    pub child_max_age: Option<u32>,
    pub effective_from: NaiveDate,
}

impl ProductDraftValid {
    pub fn into_version(self, product_id: String, organization: String, version: u32) -> ProductVersion {
        ProductVersion {
            product_id,
            organization,
            layer: self.layer,
            name: self.name,
            rules: self.rules,
            annual_ceiling_xof: self.annual_ceiling_xof,
            waiting_period_days: self.waiting_period_days,
            grace_period_days: self.grace_period_days,
            excluded_categories: self.excluded_categories,
            max_dependants: self.max_dependants,
            child_max_age: self.child_max_age,
            effective_from: self.effective_from,
            version,
        }
    }
}

fn unknown_value(field: String, allowed: &[&str]) -> FieldError {
    let list = allowed.join(", ");
    FieldError::new(
        field,
        "unknown_value",
        format!("must be one of {list}"),
        format!("doit être l'une des valeurs {list}"),
    )
}

fn out_of_range(field: &str, min: i64, max: i64) -> FieldError {
    FieldError::new(
        field,
        "out_of_range",
        format!("must be between {min} and {max}"),
        format!("doit être compris entre {min} et {max}"),
    )
}

/// A whole number in `min..=max`, or the error for `field`.
fn bounded(value: i64, field: &str, min: i64, max: i64, errors: &mut Vec<FieldError>) -> Option<u32> {
    if (min..=max).contains(&value) {
        u32::try_from(value).ok()
    } else {
        errors.push(out_of_range(field, min, max));
        None
    }
}

use crate::dates::parse as parse_date;

impl ProductDraft {
    /// Checks every rule of API.md §5 Products and lists each one broken, with its JSON pointer.
    pub fn validate(self, caller_kind: OrgKind) -> Result<ProductDraftValid, Vec<FieldError>> {
        let mut errors = Vec::new();

        let layer = match self.layer.as_deref() {
            None => {
                errors.push(FieldError::required("/layer"));
                None
            }
            Some(raw) => match Layer::parse(raw) {
                None => {
                    errors.push(unknown_value("/layer".into(), &Layer::ALL.map(Layer::as_str)));
                    None
                }
                Some(layer) if !layer.suits(caller_kind) => {
                    let allowed: Vec<&str> = Layer::ALL
                        .into_iter()
                        .filter(|l| l.suits(caller_kind))
                        .map(Layer::as_str)
                        .collect();
                    let (en, fr) = if allowed.is_empty() {
                        (
                            format!("a {} cannot own products", caller_kind.as_str()),
                            format!(
                                "une organisation de type {} ne peut pas détenir de produits",
                                caller_kind.as_str()
                            ),
                        )
                    } else {
                        let list = allowed.join(", ");
                        (
                            format!("a {} may only create products of layer {list}", caller_kind.as_str()),
                            format!(
                                "une organisation de type {} ne peut créer que des produits de couche {list}",
                                caller_kind.as_str()
                            ),
                        )
                    };
                    errors.push(FieldError::new("/layer", "layer_not_allowed", en, fr));
                    None
                }
                Some(layer) => Some(layer),
            },
        };

        let name = match self.name {
            None => {
                errors.push(FieldError::required("/name"));
                None
            }
            Some(raw) => {
                let trimmed = raw.trim();
                if trimmed.is_empty() {
                    errors.push(FieldError::new(
                        "/name",
                        "empty",
                        "must not be empty",
                        "ne doit pas être vide",
                    ));
                    None
                } else if trimmed.chars().count() > MAX_NAME_CHARS {
                    errors.push(FieldError::new(
                        "/name",
                        "too_long",
                        format!("must be at most {MAX_NAME_CHARS} characters"),
                        format!("doit compter au plus {MAX_NAME_CHARS} caractères"),
                    ));
                    None
                } else if trimmed.chars().any(crate::text::is_forbidden) {
                    // Shown on cards and statements, and written into CSV exports.
                    errors.push(FieldError::control_characters("/name"));
                    None
                } else {
                    Some(trimmed.to_owned())
                }
            }
        };

        let rules = match self.rules {
            None => {
                errors.push(FieldError::required("/rules"));
                None
            }
            Some(drafts) if drafts.is_empty() => {
                errors.push(FieldError::new(
                    "/rules",
                    "empty",
                    "must hold at least one rule",
                    "doit contenir au moins une règle",
                ));
                None
            }
            Some(drafts) if drafts.len() > MAX_RULES => {
                errors.push(FieldError::new(
                    "/rules",
                    "too_many",
                    format!("must hold at most {MAX_RULES} rules"),
                    format!("doit contenir au plus {MAX_RULES} règles"),
                ));
                None
            }
            Some(drafts) => {
                let before = errors.len();
                let rules: Vec<Rule> = drafts
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, d)| validate_rule(i, d, &mut errors))
                    .collect();
                (errors.len() == before).then_some(rules)
            }
        };

        let annual_ceiling_xof = match (self.annual_ceiling_xof, layer) {
            (None, _) => None,
            // §6 caps the complementary share only; a base ceiling would be stored and never applied.
            (Some(_), Some(Layer::Base)) => {
                errors.push(FieldError::new(
                    "/annual_ceiling_xof",
                    "not_allowed_for_layer",
                    "a base product has no annual ceiling: only complementary and primary shares are capped",
                    "un produit de base n'a pas de plafond annuel : seules les parts complémentaire et primaire sont plafonnées",
                ));
                None
            }
            (Some(v), _) if (0..=MAX_XOF).contains(&v) => Some(Xof(v)),
            (Some(_), _) => {
                errors.push(out_of_range("/annual_ceiling_xof", 0, MAX_XOF));
                None
            }
        };

        let waiting_period_days = bounded(
            self.waiting_period_days.unwrap_or(0),
            "/waiting_period_days",
            0,
            MAX_PERIOD_DAYS,
            &mut errors,
        );
        let grace_period_days = bounded(
            self.grace_period_days.unwrap_or(0),
            "/grace_period_days",
            0,
            MAX_PERIOD_DAYS,
            &mut errors,
        );

        let mut excluded_categories = Vec::new();
        for (i, raw) in self.excluded_categories.unwrap_or_default().iter().enumerate() {
            let field = format!("/excluded_categories/{i}");
            match Category::parse(raw) {
                None => errors.push(unknown_value(field, &Category::ALL.map(Category::as_str))),
                Some(c) if excluded_categories.contains(&c) => errors.push(FieldError::new(
                    field,
                    "duplicate",
                    format!("{raw} is listed more than once"),
                    format!("{raw} figure plus d'une fois"),
                )),
                Some(c) => excluded_categories.push(c),
            }
        }

        // A base affiliation is one person's (`POST /v1/coverages`): household rules on a base
        // product would be stored and never applied, as a ceiling would.
        let household_rule = |field: &str, errors: &mut Vec<FieldError>| {
            errors.push(FieldError::new(
                field,
                "not_allowed_for_layer",
                "a base product has no household rules: a base affiliation covers one person, without dependants",
                "un produit de base n'a pas de règles de ménage : une affiliation de base couvre une personne, sans ayants droit",
            ));
        };
        let max_dependants = match (self.max_dependants, layer) {
            (Some(_), Some(Layer::Base)) => {
                household_rule("/max_dependants", &mut errors);
                None
            }
            (v, _) => v.map(|v| bounded(v, "/max_dependants", 0, MAX_DEPENDANTS, &mut errors)),
        };
        let child_max_age = match (self.child_max_age, layer) {
            (Some(_), Some(Layer::Base)) => {
                household_rule("/child_max_age", &mut errors);
                None
            }
            (v, _) => v.map(|v| bounded(v, "/child_max_age", 0, MAX_CHILD_AGE, &mut errors)),
        };

        let effective_from = match self.effective_from.as_deref() {
            None => {
                errors.push(FieldError::required("/effective_from"));
                None
            }
            Some(raw) => parse_date(raw).or_else(|| {
                errors.push(FieldError::new(
                    "/effective_from",
                    "invalid_date",
                    "must be a date written YYYY-MM-DD",
                    "doit être une date au format AAAA-MM-JJ",
                ));
                None
            }),
        };

        if !errors.is_empty() {
            return Err(errors);
        }
        match (
            layer,
            name,
            rules,
            waiting_period_days,
            grace_period_days,
            effective_from,
        ) {
            (Some(layer), Some(name), Some(rules), Some(waiting), Some(grace), Some(effective_from)) => {
                Ok(ProductDraftValid {
                    layer,
                    name,
                    rules,
                    annual_ceiling_xof,
                    waiting_period_days: waiting,
                    grace_period_days: grace,
                    excluded_categories,
                    max_dependants: max_dependants.flatten(),
                    child_max_age: child_max_age.flatten(),
                    effective_from,
                })
            }
            // Every `None` above pushed an error, so this arm is unreachable; answering with an
            // empty list would still be a 422, never a half-built product.
            _ => Err(errors),
        }
    }
}

fn validate_rule(index: usize, draft: RuleDraft, errors: &mut Vec<FieldError>) -> Option<Rule> {
    let before = errors.len();
    let care_level = draft.care_level.as_deref().and_then(|raw| {
        CareLevel::parse(raw).or_else(|| {
            errors.push(unknown_value(
                format!("/rules/{index}/care_level"),
                &CareLevel::ALL.map(CareLevel::as_str),
            ));
            None
        })
    });
    let category = draft.category.as_deref().and_then(|raw| {
        Category::parse(raw).or_else(|| {
            errors.push(unknown_value(
                format!("/rules/{index}/category"),
                &Category::ALL.map(Category::as_str),
            ));
            None
        })
    });
    let field = format!("/rules/{index}/rate_bp");
    let rate_bp = match draft.rate_bp {
        None => {
            errors.push(FieldError::required(field));
            None
        }
        Some(v) => BasisPoints::new(v).or_else(|| {
            errors.push(out_of_range(&field, 0, 10_000));
            None
        }),
    };
    if errors.len() != before {
        return None;
    }
    rate_bp.map(|rate_bp| Rule {
        care_level,
        category,
        rate_bp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    fn rule(care_level: Option<CareLevel>, category: Option<Category>, rate: u32) -> Rule {
        Rule {
            care_level,
            category,
            rate_bp: BasisPoints(rate),
        }
    }

    fn version(effective_from: &str, version: u32, rules: Vec<Rule>) -> ProductVersion {
        ProductVersion {
            product_id: "prod-1".into(),
            organization: "mut-tsevie".into(),
            layer: Layer::Complementary,
            name: "Complémentaire Tsévié".into(),
            rules,
            annual_ceiling_xof: None,
            waiting_period_days: 0,
            grace_period_days: 0,
            excluded_categories: vec![],
            max_dependants: None,
            child_max_age: None,
            effective_from: date(effective_from),
            version,
        }
    }

    fn good_draft() -> ProductDraft {
        ProductDraft {
            layer: Some("complementary".into()),
            name: Some("  Complémentaire Tsévié  ".into()),
            rules: Some(vec![
                RuleDraft {
                    care_level: Some("hospital".into()),
                    category: Some("hospitalization".into()),
                    rate_bp: Some(10_000),
                },
                RuleDraft {
                    care_level: None,
                    category: None,
                    rate_bp: Some(5_000),
                },
            ]),
            annual_ceiling_xof: Some(150_000),
            waiting_period_days: Some(90),
            grace_period_days: Some(30),
            excluded_categories: Some(vec!["optical".into(), "dental".into()]),
            max_dependants: Some(6),
            child_max_age: Some(21),
            effective_from: Some("2026-01-01".into()),
        }
    }

    #[test]
    fn vocabularies_serialize_as_the_contract_spells_them() {
        for l in Layer::ALL {
            assert_eq!(serde_json::to_value(l).unwrap(), l.as_str());
            assert_eq!(Layer::parse(l.as_str()), Some(l));
        }
        for c in CareLevel::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
            assert_eq!(CareLevel::parse(c.as_str()), Some(c));
        }
        for c in Category::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
            assert_eq!(Category::parse(c.as_str()), Some(c));
        }
        assert_eq!(CareLevel::UniversityHospital.as_str(), "university_hospital");
        assert_eq!(Layer::parse("Base"), None);
        assert_eq!(Category::parse("drugs"), None);
    }

    #[test]
    fn layers_suit_their_owners() {
        assert!(Layer::Base.suits(OrgKind::Scheme));
        assert!(!Layer::Base.suits(OrgKind::Mutuelle));
        assert!(Layer::Complementary.suits(OrgKind::Mutuelle));
        assert!(Layer::Primary.suits(OrgKind::Mutuelle));
        assert!(!Layer::Primary.suits(OrgKind::Scheme));
        for l in Layer::ALL {
            assert!(!l.suits(OrgKind::Provider));
            assert!(!l.suits(OrgKind::Operator));
        }
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let p = version(
            "2026-01-01",
            1,
            vec![
                rule(Some(CareLevel::UniversityHospital), None, 0),
                rule(Some(CareLevel::Hospital), Some(Category::Hospitalization), 8_000),
                rule(None, Some(Category::Pharmacy), 5_000),
                rule(Some(CareLevel::HealthPost), None, 7_000),
            ],
        );
        let rate = |level, cat| p.rate_for(level, cat).map(BasisPoints::value);
        assert_eq!(rate(CareLevel::Hospital, Some(Category::Hospitalization)), Some(8_000));
        assert_eq!(rate(CareLevel::HealthCenter, Some(Category::Pharmacy)), Some(5_000));
        assert_eq!(rate(CareLevel::HealthPost, Some(Category::Pharmacy)), Some(5_000));
        assert_eq!(rate(CareLevel::HealthPost, Some(Category::Consultation)), Some(7_000));
        assert_eq!(rate(CareLevel::Hospital, Some(Category::Consultation)), None);
        assert_eq!(rate(CareLevel::UniversityHospital, Some(Category::Pharmacy)), Some(0));
        // Without a category only category-free rules answer.
        assert_eq!(rate(CareLevel::Hospital, None), None);
        assert_eq!(rate(CareLevel::HealthPost, None), Some(7_000));
        // A 0 % rule and an exclusion both mean "this product does not pay for that".
        assert_eq!(
            p.paying_rate(CareLevel::UniversityHospital, Some(Category::Pharmacy)),
            None
        );
        let mut excluding = p.clone();
        excluding.excluded_categories = vec![Category::Pharmacy];
        assert_eq!(
            excluding.paying_rate(CareLevel::HealthPost, Some(Category::Pharmacy)),
            None
        );
        assert_eq!(
            excluding.paying_rate(CareLevel::HealthPost, Some(Category::Consultation)),
            Some(BasisPoints(7_000))
        );
    }

    #[test]
    fn the_version_in_force_is_the_latest_started_one() {
        let versions = vec![
            version("2024-01-01", 1, vec![]),
            version("2025-08-01", 2, vec![]),
            version("2026-01-01", 3, vec![]),
        ];
        let on = |d| select_version(&versions, date(d)).map(|v| v.version);
        assert_eq!(on("2023-12-31"), None);
        assert_eq!(on("2024-01-01"), Some(1));
        assert_eq!(on("2025-07-31"), Some(1));
        assert_eq!(on("2025-08-01"), Some(2));
        assert_eq!(on("2030-01-01"), Some(3));
        assert_eq!(select_version(&[], date("2026-01-01")), None);
    }

    #[test]
    fn a_good_draft_is_accepted_and_trimmed() {
        let valid = good_draft().validate(OrgKind::Mutuelle).unwrap();
        assert_eq!(valid.name, "Complémentaire Tsévié");
        assert_eq!(valid.layer, Layer::Complementary);
        assert_eq!(valid.rules.len(), 2);
        assert_eq!(
            valid.rules[0],
            rule(Some(CareLevel::Hospital), Some(Category::Hospitalization), 10_000)
        );
        assert_eq!(valid.excluded_categories, vec![Category::Optical, Category::Dental]);
        assert_eq!(valid.annual_ceiling_xof, Some(Xof(150_000)));
        assert_eq!((valid.waiting_period_days, valid.grace_period_days), (90, 30));
        assert_eq!((valid.max_dependants, valid.child_max_age), (Some(6), Some(21)));
        let v = valid.into_version("p1".into(), "mut-tsevie".into(), 1);
        assert_eq!(v.effective_from, date("2026-01-01"));
        assert_eq!(v.version, 1);
    }

    #[test]
    fn defaults_apply_to_periods_and_exclusions() {
        let draft = ProductDraft {
            layer: Some("base".into()),
            name: Some("AMU — INAM".into()),
            rules: Some(vec![RuleDraft {
                rate_bp: Some(8_000),
                ..RuleDraft::default()
            }]),
            effective_from: Some("2024-01-01".into()),
            ..ProductDraft::default()
        };
        let valid = draft.validate(OrgKind::Scheme).unwrap();
        assert_eq!((valid.waiting_period_days, valid.grace_period_days), (0, 0));
        assert!(valid.excluded_categories.is_empty());
        assert_eq!(valid.annual_ceiling_xof, None);
    }

    #[test]
    fn a_draft_reports_every_broken_rule() {
        let draft = ProductDraft {
            layer: Some("base".into()),
            name: Some("   ".into()),
            rules: Some(vec![
                RuleDraft {
                    care_level: Some("clinic".into()),
                    category: Some("consultation".into()),
                    rate_bp: Some(8_000),
                },
                RuleDraft {
                    care_level: None,
                    category: Some("drugs".into()),
                    rate_bp: None,
                },
                RuleDraft {
                    care_level: None,
                    category: None,
                    rate_bp: Some(10_001),
                },
                RuleDraft {
                    care_level: None,
                    category: None,
                    rate_bp: Some(-1),
                },
            ]),
            annual_ceiling_xof: Some(-5),
            waiting_period_days: Some(-1),
            grace_period_days: Some(3651),
            excluded_categories: Some(vec!["dental".into(), "teeth".into(), "dental".into()]),
            max_dependants: Some(-2),
            child_max_age: Some(121),
            effective_from: Some("2026-02-30".into()),
        };
        let errors = draft.validate(OrgKind::Mutuelle).unwrap_err();
        let got: Vec<(&str, &str)> = errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
        assert_eq!(
            got,
            [
                ("/layer", "layer_not_allowed"),
                ("/name", "empty"),
                ("/rules/0/care_level", "unknown_value"),
                ("/rules/1/category", "unknown_value"),
                ("/rules/1/rate_bp", "required"),
                ("/rules/2/rate_bp", "out_of_range"),
                ("/rules/3/rate_bp", "out_of_range"),
                ("/annual_ceiling_xof", "out_of_range"),
                ("/waiting_period_days", "out_of_range"),
                ("/grace_period_days", "out_of_range"),
                ("/excluded_categories/1", "unknown_value"),
                ("/excluded_categories/2", "duplicate"),
                ("/max_dependants", "out_of_range"),
                ("/child_max_age", "out_of_range"),
                ("/effective_from", "invalid_date"),
            ]
        );
        assert!(errors.iter().all(|e| !e.en.is_empty() && !e.fr.is_empty()));
    }

    #[test]
    fn missing_fields_are_required() {
        let errors = ProductDraft::default().validate(OrgKind::Mutuelle).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["/layer", "/name", "/rules", "/effective_from"]);
        assert!(errors.iter().all(|e| e.code == "required"));
    }

    #[test]
    fn layer_and_limits_edge_cases() {
        let mut d = good_draft();
        d.layer = Some("complementary".into());
        assert_eq!(
            d.clone().validate(OrgKind::Scheme).unwrap_err()[0].code,
            "layer_not_allowed"
        );
        d.layer = Some("secondary".into());
        assert_eq!(
            d.clone().validate(OrgKind::Mutuelle).unwrap_err()[0].code,
            "unknown_value"
        );
        d.layer = Some("primary".into());
        d.name = Some("é".repeat(MAX_NAME_CHARS));
        d.rules = Some(vec![RuleDraft {
            rate_bp: Some(0),
            ..RuleDraft::default()
        }]);
        d.waiting_period_days = Some(MAX_PERIOD_DAYS);
        d.child_max_age = Some(MAX_CHILD_AGE);
        d.annual_ceiling_xof = Some(0);
        assert!(d.clone().validate(OrgKind::Mutuelle).is_ok());
        d.name = Some("é".repeat(MAX_NAME_CHARS + 1));
        d.rules = Some(vec![]);
        d.effective_from = Some("2026-1-01".into());
        let codes: Vec<String> = d
            .validate(OrgKind::Mutuelle)
            .unwrap_err()
            .into_iter()
            .map(|e| e.code)
            .collect();
        assert_eq!(codes, ["too_long", "empty", "invalid_date"]);
    }

    #[test]
    fn a_base_product_has_no_ceiling() {
        let mut d = good_draft();
        d.layer = Some("base".into());
        d.annual_ceiling_xof = Some(100_000);
        (d.max_dependants, d.child_max_age) = (None, None);
        let errors = d.validate(OrgKind::Scheme).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "/annual_ceiling_xof");
        assert_eq!(errors[0].code, "not_allowed_for_layer");
    }

    #[test]
    fn a_base_product_has_no_household_rules() {
        let mut d = good_draft();
        d.layer = Some("base".into());
        d.annual_ceiling_xof = None;
        d.max_dependants = Some(3);
        d.child_max_age = Some(20);
        let errors = d.validate(OrgKind::Scheme).unwrap_err();
        let faults: Vec<(&str, &str)> = errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
        assert_eq!(
            faults,
            [
                ("/max_dependants", "not_allowed_for_layer"),
                ("/child_max_age", "not_allowed_for_layer")
            ]
        );
    }

    #[test]
    fn too_many_rules_are_refused() {
        let mut d = good_draft();
        d.rules = Some(vec![
            RuleDraft {
                rate_bp: Some(1),
                ..RuleDraft::default()
            };
            MAX_RULES + 1
        ]);
        assert_eq!(d.validate(OrgKind::Mutuelle).unwrap_err()[0].code, "too_many");
    }

    #[test]
    fn a_hundred_rules_are_accepted() {
        // API.md §4: "a product at most 100 `rules`": the hundredth is still accepted.
        let mut d = good_draft();
        d.rules = Some(vec![
            RuleDraft {
                rate_bp: Some(1),
                ..RuleDraft::default()
            };
            100
        ]);
        assert_eq!(d.validate(OrgKind::Mutuelle).map(|v| v.rules.len()), Ok(100));
    }

    #[test]
    fn a_successor_starts_after_the_version_in_force_in_the_same_layer() {
        let mut history = vec![version("2026-01-01", 1, vec![])];
        let today = date("2026-06-15");
        let mut next = good_draft().validate(OrgKind::Mutuelle).unwrap();
        let codes = |history: &[ProductVersion], next: &ProductDraftValid| {
            check_successor(history, next, today)
                .into_iter()
                .map(|e| (e.field, e.code))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            codes(&history, &next),
            [("/effective_from".to_owned(), "not_after_current_version".to_owned())]
        );
        next.effective_from = date("2026-01-02");
        assert_eq!(codes(&history, &next), []);
        next.layer = Layer::Primary;
        assert_eq!(
            codes(&history, &next),
            [("/layer".to_owned(), "layer_changed".to_owned())]
        );
        next.layer = Layer::Complementary;
        // A version scheduled for next year may be superseded from its own day, or earlier, but
        // not from before the start of the version in force today.
        history.push(version("2027-01-01", 2, vec![]));
        next.effective_from = date("2027-01-01");
        assert_eq!(codes(&history, &next), []);
        next.effective_from = date("2026-07-01");
        assert_eq!(codes(&history, &next), []);
        next.effective_from = date("2026-01-01");
        assert_eq!(codes(&history, &next)[0].1, "not_after_current_version");
        // Before the first version starts, anything goes.
        assert_eq!(check_successor(&history, &next, date("2025-12-31")), []);
    }

    #[test]
    fn before_the_start_the_version_the_product_starts_with_applies() {
        // v1 was to start on 1 March; v2 superseded it from 1 February.
        let versions = vec![version("2027-03-01", 1, vec![]), version("2027-02-01", 2, vec![])];
        let on = |d| select_version_or_first(&versions, date(d)).map(|v| v.version);
        assert_eq!(on("2027-01-15"), Some(2));
        assert_eq!(on("2027-03-15"), Some(2));
        assert_eq!(select_version_or_first(&[], date("2027-01-15")), None);
    }

    #[test]
    fn a_version_superseded_while_scheduled_never_takes_effect() {
        // v2 was scheduled for 2027-01-01; v3 replaced it from the same day, v4 from earlier
        // still; v5 follows v4.
        let versions = vec![
            version("2026-01-01", 1, vec![]),
            version("2027-01-01", 2, vec![]),
            version("2027-01-01", 3, vec![]),
            version("2026-12-01", 4, vec![]),
            version("2027-03-01", 5, vec![]),
        ];
        let on = |d| select_version(&versions, date(d)).map(|v| v.version);
        assert_eq!(on("2026-11-30"), Some(1));
        assert_eq!(on("2026-12-01"), Some(4));
        assert_eq!(on("2027-01-01"), Some(4));
        assert_eq!(on("2027-03-01"), Some(5));
        let superseded: Vec<Option<u32>> = versions.iter().map(|v| superseded_by(&versions, v)).collect();
        assert_eq!(superseded, [None, Some(3), Some(4), None, None]);
    }

    #[test]
    fn versions_round_trip_through_json() {
        let mut p = version("2026-01-01", 2, vec![rule(Some(CareLevel::HealthPost), None, 8_000)]);
        p.annual_ceiling_xof = Some(Xof(150_000));
        p.excluded_categories = vec![Category::Optical];
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["layer"], "complementary");
        assert_eq!(json["rules"][0]["care_level"], "health_post");
        assert_eq!(json["rules"][0]["rate_bp"], 8_000);
        assert_eq!(json["effective_from"], "2026-01-01");
        assert_eq!(serde_json::from_value::<ProductVersion>(json).unwrap(), p);
    }

    /// A product's history: versions numbered 1, 2, 3…, each starting after the one before or,
    /// superseding scheduled ones, on or before it; handed over in any order.
    fn arb_versions() -> impl Strategy<Value = Vec<ProductVersion>> {
        (
            0i64..3_000,
            prop::collection::vec(prop_oneof![3 => 1i64..400, 1 => -400i64..=0], 0..8),
        )
            .prop_map(|(first, gaps)| {
                let mut from = date("2020-01-01") + chrono::Duration::days(first);
                let mut versions = Vec::new();
                for (n, gap) in (1u32..).zip(gaps) {
                    let mut v = version("2020-01-01", n, vec![]);
                    v.effective_from = from;
                    versions.push(v);
                    from += chrono::Duration::days(gap);
                }
                versions
            })
            .prop_shuffle()
    }

    /// A day anywhere around the history, or on, just before or just after a version's start.
    fn arb_history_and_day() -> impl Strategy<Value = (Vec<ProductVersion>, NaiveDate)> {
        arb_versions().prop_flat_map(|versions| {
            let starts: Vec<NaiveDate> = versions.iter().map(|v| v.effective_from).collect();
            let any_day = (0u64..6_500).prop_map(|n| date("2019-12-01") + chrono::Days::new(n));
            let near_a_start = (
                prop::sample::select(if starts.is_empty() {
                    vec![date("2020-01-01")]
                } else {
                    starts
                }),
                -1i64..=1,
            )
                .prop_map(|(start, shift)| start + chrono::Duration::days(shift));
            (Just(versions), prop_oneof![any_day, near_a_start])
        })
    }

    proptest! {
        #[test]
        fn the_selected_version_is_the_latest_not_after_the_date((versions, on) in arb_history_and_day()) {
            let expected = versions.iter().filter(|v| v.effective_from <= on).map(|v| v.version).max();
            let chosen = select_version(&versions, on);
            prop_assert_eq!(chosen.map(|v| v.version), expected, "on {}", on);
                        if let Some(chosen) = chosen {
                prop_assert!(chosen.effective_from <= on);
                                prop_assert_eq!(superseded_by(&versions, chosen), None);
            }
            // A superseded version is never the one in force, whatever the day.
            for v in &versions {
                if let Some(by) = superseded_by(&versions, v) {
                    prop_assert!(by > v.version);
                    prop_assert!(chosen.is_none_or(|c| c.version != v.version));
                }
            }
        }

        #[test]
        fn the_rate_is_the_first_matching_rule(
            rules in prop::collection::vec(
                (prop::option::of(0usize..4), prop::option::of(0usize..10), 0u32..=10_000),
                0..12,
            ),
            level in 0usize..4,
            category in prop::option::of(0usize..10),
        ) {
            let rules: Vec<Rule> = rules
                .into_iter()
                .map(|(l, c, r)| rule(l.map(|i| CareLevel::ALL[i]), c.map(|i| Category::ALL[i]), r))
                .collect();
            let p = version("2026-01-01", 1, rules.clone());
            let level = CareLevel::ALL[level];
            let category = category.map(|i| Category::ALL[i]);
            let expected = rules.iter().find(|r| {
                r.care_level.is_none_or(|l| l == level)
                    && match r.category { None => true, Some(c) => category == Some(c) }
            });
            prop_assert_eq!(p.rate_for(level, category), expected.map(|r| r.rate_bp));
        }
    }
}
