//! Beneficiaries (API.md §5): a person, once, whichever mutuelle or scheme covers them; their
//! national ids, checked against rules kept as data; and the folded names that find likely
//! duplicates among people without papers.

use std::borrow::Cow;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::eligibility::BirthDatePrecision;
use crate::error::FieldError;

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_LOCALITY_CHARS: usize = 100;
/// The earliest birth date accepted.
pub const MIN_BIRTH_YEAR: i32 = 1900;

/// What a national id value may contain once normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Charset {
    /// ASCII digits only.
    Digits,
    /// ASCII upper-case letters and digits (values are upper-cased before the check).
    LettersAndDigits,
}

/// The format of one `(country, type)` of national id: a length range and a charset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NationalIdRule {
    pub country: Cow<'static, str>,
    #[serde(rename = "type")]
    pub id_type: Cow<'static, str>,
    pub min_len: usize,
    pub max_len: usize,
    pub charset: Charset,
}

impl NationalIdRule {
    /// Whether a normalised value has this format.
    pub fn accepts(&self, value: &str) -> bool {
        let charset_ok = match self.charset {
            Charset::Digits => value.bytes().all(|b| b.is_ascii_digit()),
            Charset::LettersAndDigits => value.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
        };
        charset_ok && (self.min_len..=self.max_len).contains(&value.len())
    }

    /// "12 digits", "5 to 20 letters and digits".
    pub fn describe_en(&self) -> String {
        let what = match self.charset {
            Charset::Digits => "digits",
            Charset::LettersAndDigits => "letters and digits",
        };
        if self.min_len == self.max_len {
            format!("{} {what}", self.min_len)
        } else {
            format!("{} to {} {what}", self.min_len, self.max_len)
        }
    }

    pub fn describe_fr(&self) -> String {
        let what = match self.charset {
            Charset::Digits => "chiffres",
            Charset::LettersAndDigits => "lettres et chiffres",
        };
        if self.min_len == self.max_len {
            format!("{} {what}", self.min_len)
        } else {
            format!("de {} à {} {what}", self.min_len, self.max_len)
        }
    }

    fn compact(&self) -> String {
        format!("{}:{}", self.country, self.id_type)
    }
}

const fn rule(
    country: &'static str,
    id_type: &'static str,
    min_len: usize,
    max_len: usize,
    charset: Charset,
) -> NationalIdRule {
    NationalIdRule {
        country: Cow::Borrowed(country),
        id_type: Cow::Borrowed(id_type),
        min_len,
        max_len,
        charset,
    }
}

/// The national id types shipped. DOMAIN.md marks the formats [S] or [?]: they are data, and a
/// deployment that knows better passes its own `NationalIdRules` (deserialisable from config).
const SHIPPED_RULES: &[NationalIdRule] = &[
    // Togo's NIU: 12 digits (API.md §5; DOMAIN.md [S], which notes that earlier communication
    // said 10).
    rule("TG", "NIU", 12, 12, Charset::Digits),
    // Mali's NINA: DOMAIN.md gives no format. As presented by the RAVEC project lead in 2013
    // (maliweb.net, press [S]): 14 digits (nationality, sex, birth year, birth place, a serial)
    // and a control letter, 15 characters. The temporary NINA of 2023 is not described publicly
    // [?], hence letters and digits anywhere rather than the exact layout.
    rule("ML", "NINA", 15, 15, Charset::LettersAndDigits),
    // Senegal's CNI (the CEDEAO card, law 2016-09): no public statement of the number's length
    // was found [?]. API.md's own example normalises to 12 digits; the NIN printed on the card is
    // commonly 13 digits and card numbers run longer: 12 to 17 digits until a source says more.
    rule("SN", "CNI", 12, 17, Charset::Digits),
    // Senegal's RNU (the social registry): 5 to 20 letters and digits (API.md §5).
    rule("SN", "RNU", 5, 20, Charset::LettersAndDigits),
];

/// The national id types a deployment accepts, with their formats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NationalIdRules(Cow<'static, [NationalIdRule]>);

impl Default for NationalIdRules {
    fn default() -> Self {
        NationalIdRules::SHIPPED
    }
}

/// Spaces (any Unicode white space) and dashes (ASCII and the Unicode hyphens and dashes).
fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '-' | '\u{2010}'..='\u{2015}' | '\u{2212}')
}

/// Longest raw national id value looked at; anything longer cannot fit any rule even after its
/// separators are removed, and is refused without copying it.
const MAX_RAW_NATIONAL_ID_BYTES: usize = 256;

fn invalid_national_id(pointer: &str, en: impl Into<String>, fr: impl Into<String>) -> FieldError {
    FieldError::new(pointer, "invalid_national_id", en, fr)
}

impl NationalIdRules {
    pub const SHIPPED: NationalIdRules = NationalIdRules(Cow::Borrowed(SHIPPED_RULES));

    pub fn new(rules: Vec<NationalIdRule>) -> Self {
        NationalIdRules(Cow::Owned(rules))
    }

    /// A deployment's own rules, from JSON: a list of `{country, type, min_len, max_len,
    /// charset}` that replaces the shipped list. Each rule is checked, so that a mistake stops
    /// the service at start rather than refusing every registration of that type.
    pub fn from_json(text: &str) -> Result<NationalIdRules, String> {
        let rules: Vec<NationalIdRule> =
            serde_json::from_str(text).map_err(|e| format!("not a list of national id rules: {e}"))?;
        if rules.is_empty() {
            return Err("lists no rule: no national id could be accepted".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, r) in rules.iter().enumerate() {
            let at = format!("rule {} ({}:{})", i + 1, r.country, r.id_type);
            // A code no country holds (`ZZ`) would name ids no one could be sent with, as the
            // operator's own country is checked.
            if crate::organization::Country::parse(&r.country).is_none() {
                return Err(format!(
                    "{at}: country must be an ISO 3166-1 alpha-2 code in upper case, such as TG"
                ));
            }
            let type_ok = (1..=20).contains(&r.id_type.len())
                && r.id_type
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if !type_ok {
                return Err(format!(
                    "{at}: type must be 1 to 20 upper-case letters, digits or underscores"
                ));
            }
            if r.min_len == 0 || r.min_len > r.max_len || r.max_len > 64 {
                return Err(format!("{at}: lengths must satisfy 1 ≤ min_len ≤ max_len ≤ 64"));
            }
            if !seen.insert((r.country.clone(), r.id_type.clone())) {
                return Err(format!("{at}: a second rule for this country and type"));
            }
        }
        Ok(NationalIdRules::new(rules))
    }

    pub fn rules(&self) -> &[NationalIdRule] {
        &self.0
    }

    /// The rule for a normalised (upper-case) country and type.
    pub fn rule(&self, country: &str, id_type: &str) -> Option<&NationalIdRule> {
        self.0.iter().find(|r| r.country == country && r.id_type == id_type)
    }

    /// Normalises (country and type trimmed and upper-cased; spaces and dashes removed from the
    /// value, its letters upper-cased), then checks the value against the type's rule. Errors are
    /// reported at `pointer`.
    pub fn parse(&self, country: &str, id_type: &str, value: &str, pointer: &str) -> Result<NationalId, FieldError> {
        match self.check(country, id_type, value) {
            Ok(id) => Ok(id),
            Err(problem) => Err(problem.into_error(self, pointer)),
        }
    }

    /// [`Self::parse`] for a national id sent as an object at `object` (`{country, type,
    /// value}`): an unknown type is reported at its `/type`, a malformed value at its `/value`.
    pub fn parse_object(
        &self,
        country: &str,
        id_type: &str,
        value: &str,
        object: &str,
    ) -> Result<NationalId, FieldError> {
        self.check(country, id_type, value).map_err(|problem| {
            let member = match problem {
                NationalIdProblem::InvalidCountry => "country",
                NationalIdProblem::UnknownType { .. } => "type",
                NationalIdProblem::InvalidValue(_) => "value",
            };
            problem.into_error(self, &format!("{object}/{member}"))
        })
    }

    /// `CC:TYPE:VALUE`, as in query strings and CSV files.
    pub fn parse_compact(&self, compact: &str, pointer: &str) -> Result<NationalId, FieldError> {
        match split_compact(compact) {
            Some((country, id_type, value)) => self.parse(country, id_type, value, pointer),
            None => Err(compact_shape_error(pointer)),
        }
    }

    fn check(&self, country: &str, id_type: &str, value: &str) -> Result<NationalId, NationalIdProblem> {
        let country = country.trim().to_uppercase();
        let id_type = id_type.trim().to_uppercase();
        let Some(rule) = self.rule(&country, &id_type) else {
            // A country that is no country at all (`Togo`, `""`) is that member's fault, not the
            // type's; a real one without rules for the type lists the known ones.
            if crate::organization::Country::parse(&country).is_none() && !self.0.iter().any(|r| r.country == country) {
                return Err(NationalIdProblem::InvalidCountry);
            }
            return Err(NationalIdProblem::UnknownType { country, id_type });
        };
        if value.len() > MAX_RAW_NATIONAL_ID_BYTES {
            return Err(NationalIdProblem::InvalidValue(rule.clone()));
        }
        let value: String = value
            .chars()
            .filter(|c| !is_separator(*c))
            .flat_map(char::to_uppercase)
            .collect();
        if !rule.accepts(&value) {
            return Err(NationalIdProblem::InvalidValue(rule.clone()));
        }
        Ok(NationalId {
            country,
            id_type,
            value,
        })
    }

    fn known_list(&self) -> String {
        self.0
            .iter()
            .map(NationalIdRule::compact)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why a national id was refused, before it is given a pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NationalIdProblem {
    InvalidCountry,
    UnknownType { country: String, id_type: String },
    InvalidValue(NationalIdRule),
}

impl NationalIdProblem {
    pub(crate) fn into_error(self, rules: &NationalIdRules, pointer: &str) -> FieldError {
        match self {
            // Read in any case, unlike an organisation's country.
            NationalIdProblem::InvalidCountry => FieldError::new(
                pointer,
                "invalid_country",
                "must be an ISO 3166-1 alpha-2 code, such as TG, ML or SN",
                "doit être un code ISO 3166-1 alpha-2, comme TG, ML ou SN",
            ),
            NationalIdProblem::UnknownType { country, id_type } => {
                let known = rules.known_list();
                // The caller's own type is echoed when it reads as a type's name: not a long
                // one, and not one with digits, which is a number (the value given as the type)
                // and may be the person's.
                let a_name =
                    id_type.len() <= 16 && id_type.chars().all(|c| c.is_ascii_alphabetic() || c == '_' || c == '-');
                let named = if a_name {
                    format!(" {country}:{id_type}")
                } else {
                    String::new()
                };
                FieldError::new(
                    pointer,
                    "unknown_national_id_type",
                    format!("unknown national id type{named}; known types: {known}"),
                    format!("type de numéro d'identité nationale inconnu{named} ; types connus : {known}"),
                )
            }
            NationalIdProblem::InvalidValue(rule) => invalid_national_id(
                pointer,
                format!(
                    "a {} number must be {} (spaces and dashes are ignored)",
                    rule.compact(),
                    rule.describe_en()
                ),
                format!(
                    "un numéro {} doit compter {} (espaces et tirets ignorés)",
                    rule.compact(),
                    rule.describe_fr()
                ),
            ),
        }
    }
}

pub(crate) fn split_compact(compact: &str) -> Option<(&str, &str, &str)> {
    let mut parts = compact.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(c), Some(t), Some(v)) => Some((c, t, v)),
        _ => None,
    }
}

pub(crate) fn compact_shape_error(pointer: &str) -> FieldError {
    invalid_national_id(
        pointer,
        "must be COUNTRY:TYPE:VALUE, such as TG:NIU:123456789012",
        "doit être de la forme PAYS:TYPE:VALEUR, par exemple TG:NIU:123456789012",
    )
}

/// Why a spreadsheet cell is no `CC:TYPE:VALUE`, when that can be told: it holds only the number
/// (a column typed as numbers), or that number in scientific notation, which has also lost its
/// last digits. Said without the value, which is personal data.
pub(crate) fn compact_cell_error(raw: &str, pointer: &str) -> FieldError {
    let compact: String = raw.chars().filter(|c| !is_separator(*c)).collect();
    if in_scientific_notation(&compact) {
        return invalid_national_id(
            pointer,
            "a spreadsheet wrote this number in scientific notation (such as 1,2E+11), which loses its last digits: format the column as Text and type the id again as COUNTRY:TYPE:VALUE (TG:NIU:…, ML:NINA:…, SN:CNI:… or SN:RNU:…)",
            "un tableur a écrit ce numéro en notation scientifique (comme 1,2E+11), qui en perd les derniers chiffres : mettez la colonne au format Texte et saisissez à nouveau le numéro sous la forme PAYS:TYPE:VALEUR (TG:NIU:…, ML:NINA:…, SN:CNI:… ou SN:RNU:…)",
        );
    }
    if compact.starts_with(|c: char| c.is_ascii_digit()) && compact.chars().all(|c| c.is_ascii_alphanumeric()) {
        return invalid_national_id(
            pointer,
            "holds the number alone: write the country and the type before it, as COUNTRY:TYPE:VALUE (TG:NIU:…, ML:NINA:…, SN:CNI:… or SN:RNU:…)",
            "ne contient que le numéro : écrivez le pays et le type devant, sous la forme PAYS:TYPE:VALEUR (TG:NIU:…, ML:NINA:…, SN:CNI:… ou SN:RNU:…)",
        );
    }
    compact_shape_error(pointer)
}

/// A national identifier, normalised. Same `(country, type, value)` = same person.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NationalId {
    pub country: String,
    #[serde(rename = "type")]
    pub id_type: String,
    pub value: String,
}

impl NationalId {
    /// `NationalIdRules::parse` with the shipped rules.
    pub fn parse(country: &str, id_type: &str, value: &str, pointer: &str) -> Result<NationalId, FieldError> {
        NationalIdRules::SHIPPED.parse(country, id_type, value, pointer)
    }

    /// `CC:TYPE:VALUE` (query strings, CSV), with the shipped rules; errors at `pointer`.
    pub fn parse_compact(compact: &str, pointer: &str) -> Result<NationalId, FieldError> {
        NationalIdRules::SHIPPED.parse_compact(compact, pointer)
    }

    pub fn to_compact(&self) -> String {
        format!("{}:{}:{}", self.country, self.id_type, self.value)
    }
}

impl std::fmt::Display for NationalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.country, self.id_type, self.value)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Sex {
    F,
    M,
}

impl Sex {
    pub const ALL: [Sex; 2] = [Sex::F, Sex::M];

    pub fn as_str(self) -> &'static str {
        match self {
            Sex::F => "F",
            Sex::M => "M",
        }
    }

    pub fn parse(s: &str) -> Option<Sex> {
        Sex::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Locality {
    pub region: String,
    pub district: String,
    pub commune: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beneficiary {
    pub id: String,
    pub national_id: Option<NationalId>,
    pub family_name: String,
    pub given_names: String,
    pub sex: Sex,
    pub birth_date: NaiveDate,
    pub birth_date_precision: BirthDatePrecision,
    pub phone: Option<String>,
    pub locality: Option<Locality>,
    pub created_at: DateTime<Utc>,
    /// One more with each correction (`PATCH /v1/beneficiaries/{id}`); 1 when registered. A
    /// stored response of an earlier release (an idempotent replay) has none: 1.
    #[serde(default = "first_version")]
    pub version: u32,
    /// The person this record was merged into (`POST /v1/beneficiaries/{id}/merge`): it then
    /// holds no coverage, and the claims and events that name it are that person's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    /// The organisation that merged this record away: the record was its own, and it alone
    /// (with operators and auditors) still reads it. Never shown.
    #[serde(skip)]
    pub merged_by: Option<String>,
    /// When the person's personal data was erased under the deployment's retention period
    /// (`passerelle erase-personal-data`): the record then holds no names, national id, phone or
    /// place, and is answered as gone. Never shown.
    #[serde(skip)]
    pub erased_at: Option<DateTime<Utc>>,
}

fn first_version() -> u32 {
    1
}

impl Beneficiary {
    pub fn match_key(&self) -> String {
        match_key(&self.family_name, &self.given_names)
    }

    pub fn likely_match(&self) -> LikelyMatch {
        LikelyMatch::new(
            &self.family_name,
            &self.given_names,
            self.birth_date,
            self.birth_date_precision,
            self.sex,
        )
    }

    pub fn identity(&self) -> Identity {
        Identity {
            sex: self.sex,
            birth_date: self.birth_date,
            birth_date_precision: self.birth_date_precision,
        }
    }
}

/// What a person named by a national id must share with the person stored under that id for
/// the two to be taken for one: the sex, and the birth date as far as both know it (the same
/// day; the same year when either is known only by its year, stored as 1 January). Names are
/// not compared: their spellings vary from one register to the next. A national id whose
/// holder disagrees (a typo, a guess) is refused as `identity_mismatch`, never merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub sex: Sex,
    pub birth_date: NaiveDate,
    pub birth_date_precision: BirthDatePrecision,
}

impl Identity {
    pub fn agrees_with(&self, other: &Identity) -> bool {
        births_agree(
            (self.birth_date, self.birth_date_precision),
            (other.birth_date, other.birth_date_precision),
        ) && self.sex == other.sex
    }
}

/// Whether two birth dates may be one: two days compare days; where either side knows only the
/// year, the years are compared.
pub fn births_agree(a: (NaiveDate, BirthDatePrecision), b: (NaiveDate, BirthDatePrecision)) -> bool {
    match (a.1, b.1) {
        (BirthDatePrecision::Day, BirthDatePrecision::Day) => a.0 == b.0,
        _ => a.0.year() == b.0.year(),
    }
}

/// A beneficiary's fields as received (JSON body or CSV row), nothing checked yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BeneficiaryDraft {
    pub national_id: Option<NationalIdDraft>,
    pub family_name: Option<String>,
    pub given_names: Option<String>,
    pub sex: Option<String>,
    /// `YYYY-MM-DD`, or a bare `YYYY` when only the year is known.
    pub birth_date: Option<String>,
    /// `day` or `year`; absent = `day` for `YYYY-MM-DD`, `year` for `YYYY`.
    pub birth_date_precision: Option<String>,
    pub phone: Option<String>,
    pub locality: Option<LocalityDraft>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NationalIdDraft {
    pub country: Option<String>,
    pub id_type: Option<String>,
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalityDraft {
    pub region: Option<String>,
    pub district: Option<String>,
    pub commune: Option<String>,
}

/// A beneficiary that passed every rule, not yet stored (no id, no `created_at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidBeneficiary {
    pub national_id: Option<NationalId>,
    pub family_name: String,
    pub given_names: String,
    pub sex: Sex,
    pub birth_date: NaiveDate,
    pub birth_date_precision: BirthDatePrecision,
    pub phone: Option<String>,
    pub locality: Option<Locality>,
}

impl ValidBeneficiary {
    pub fn match_key(&self) -> String {
        match_key(&self.family_name, &self.given_names)
    }

    pub fn likely_match(&self) -> LikelyMatch {
        LikelyMatch::new(
            &self.family_name,
            &self.given_names,
            self.birth_date,
            self.birth_date_precision,
            self.sex,
        )
    }

    pub fn identity(&self) -> Identity {
        Identity {
            sex: self.sex,
            birth_date: self.birth_date,
            birth_date_precision: self.birth_date_precision,
        }
    }

    pub fn into_beneficiary(self, id: String, created_at: DateTime<Utc>) -> Beneficiary {
        Beneficiary {
            id,
            national_id: self.national_id,
            family_name: self.family_name,
            given_names: self.given_names,
            sex: self.sex,
            birth_date: self.birth_date,
            birth_date_precision: self.birth_date_precision,
            phone: self.phone,
            locality: self.locality,
            created_at,
            version: 1,
            merged_into: None,
            merged_by: None,
            erased_at: None,
        }
    }
}

/// What a correction of a person changes (`PATCH /v1/beneficiaries/{id}`): names, phone and
/// locality, and a national id for a person registered without one. `None` leaves a field as it
/// is; `Some(None)` removes the phone or the locality. A locality is given whole, as it stands
/// after the patch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Correction {
    /// Already checked against the deployment's rules; taken only by a person who has none.
    pub national_id: Option<NationalId>,
    pub family_name: Option<String>,
    pub given_names: Option<String>,
    pub phone: Option<Option<String>>,
    pub locality: Option<Option<LocalityDraft>>,
}

impl Beneficiary {
    /// The person as corrected, each changed field checked as at registration (errors at
    /// `/family_name`, `/locality/commune`…); the version is left to the caller. Identity is
    /// not changed by a correction: other organisations find and match the person by their
    /// national id, sex and birth date, and one of them changing it would hand the record to
    /// someone else. A national id is only ever added, to a person registered without one.
    pub fn corrected(&self, correction: Correction, today: NaiveDate) -> Result<Beneficiary, Vec<FieldError>> {
        // Only the fields sent are checked: a stored value that today's rules would refuse (a
        // rule added since it was registered) is kept as it is, and does not refuse a correction
        // of another field. A field not sent stands in as a value every rule takes, then is
        // given back.
        const STANDS_IN: &str = "x";
        let draft = BeneficiaryDraft {
            // Not checked again: a deployment's rules may have changed since it was stored.
            national_id: None,
            family_name: Some(correction.family_name.clone().unwrap_or_else(|| STANDS_IN.into())),
            given_names: Some(correction.given_names.clone().unwrap_or_else(|| STANDS_IN.into())),
            sex: Some(self.sex.as_str().to_owned()),
            birth_date: Some(match self.birth_date_precision {
                BirthDatePrecision::Year => self.birth_date.format("%Y").to_string(),
                BirthDatePrecision::Day => self.birth_date.to_string(),
            }),
            birth_date_precision: Some(self.birth_date_precision.as_str().to_owned()),
            phone: correction.phone.clone().unwrap_or(None),
            locality: correction.locality.clone().unwrap_or(None),
        };
        let valid = draft.validate("", today)?;
        Ok(Beneficiary {
            national_id: self.national_id.clone().or(correction.national_id),
            family_name: if correction.family_name.is_some() {
                valid.family_name
            } else {
                self.family_name.clone()
            },
            given_names: if correction.given_names.is_some() {
                valid.given_names
            } else {
                self.given_names.clone()
            },
            phone: if correction.phone.is_some() {
                valid.phone
            } else {
                self.phone.clone()
            },
            locality: if correction.locality.is_some() {
                valid.locality
            } else {
                self.locality.clone()
            },
            ..self.clone()
        })
    }
}

pub use crate::dates::parse as parse_date;

/// `invalid_date` for `raw`, saying what a spreadsheet made of it when that can be told.
pub(crate) fn invalid_date_of(pointer: &str, raw: &str, en: &str, fr: &str) -> FieldError {
    match crate::dates::spreadsheet_hint(raw) {
        Some((why_en, why_fr)) => FieldError::new(
            pointer,
            "invalid_date",
            format!("{en}: {why_en}"),
            format!("{fr} : {why_fr}"),
        ),
        None => FieldError::new(pointer, "invalid_date", en, fr),
    }
}

/// A long number as a spreadsheet shows it once it stops fitting the cell (`2,2E+11`), spaces
/// and dashes already removed: its last digits are lost.
pub(crate) fn in_scientific_notation(compact: &str) -> bool {
    compact.contains(['E', 'e']) && compact.contains('+') && compact.starts_with(|c: char| c.is_ascii_digit())
}

/// Why a phone number a spreadsheet went through is no E.164 number, when that can be told:
/// the `+` a number cell drops, or a long number written in scientific notation.
fn phone_hint(raw: &str) -> Option<(&'static str, &'static str)> {
    if with_spreadsheet_decimals(raw) {
        return Some((
            "a spreadsheet wrote it as a number with decimals (….0): format the column as Text and type the number again, +228…, +223… or +221…",
            "un tableur l'a écrit comme un nombre à décimales (…,0) : mettez la colonne au format Texte et saisissez à nouveau le numéro, +228…, +223… ou +221…",
        ));
    }
    let compact = compact_phone(raw);
    if in_scientific_notation(&compact) {
        return Some((
            "a spreadsheet wrote it in scientific notation (such as 2,2E+11): format the column as Text and type the number again",
            "un tableur l'a écrit en notation scientifique (comme 2,2E+11) : mettez la colonne au format Texte et saisissez à nouveau le numéro",
        ));
    }
    if (8..=15).contains(&compact.len()) && compact.bytes().all(|b| b.is_ascii_digit()) {
        return Some((
            "the leading + is missing: write it as +228…, +223… or +221… (a spreadsheet drops it from a number: format the column as Text)",
            "le + initial manque : écrivez-le +228…, +223… ou +221… (un tableur le retire d'un nombre : mettez la colonne au format Texte)",
        ));
    }
    None
}

/// A required text: trimmed, then 1 to `max` characters without control or invisible formatting characters (direction marks, zero-width spaces); the rest
/// is kept byte for byte. A huge value is refused on its byte length before anything is counted.
pub(crate) fn check_text(
    raw: Option<String>,
    pointer: String,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let Some(raw) = raw else {
        errors.push(FieldError::required(pointer));
        return None;
    };
    let text = raw.trim();
    if text.is_empty() {
        errors.push(FieldError::new(
            pointer,
            "empty",
            "must not be empty",
            "ne doit pas être vide",
        ));
        return None;
    }
    // A character is at most 4 bytes: past 4 × max bytes the count cannot fit.
    if text.len() > max * 4 || text.chars().count() > max {
        errors.push(FieldError::new(
            pointer,
            "too_long",
            format!("must be at most {max} characters"),
            format!("doit compter au plus {max} caractères"),
        ));
        return None;
    }
    if text
        .chars()
        .any(|c| crate::text::is_forbidden(c) || crate::text::is_variation_selector(c))
        || crate::text::misplaced_joiner(text)
        || text
            .chars()
            .next()
            .is_some_and(unicode_normalization::char::is_combining_mark)
    {
        errors.push(FieldError::control_characters(pointer));
        return None;
    }
    if !text.chars().any(char::is_alphanumeric) {
        errors.push(FieldError::new(
            pointer,
            "invalid_characters",
            "holds neither letter nor digit: write it with letters",
            "ne contient ni lettre ni chiffre : saisissez ce champ en lettres",
        ));
        return None;
    }
    if is_spreadsheet_error(text) {
        errors.push(FieldError::new(
            pointer,
            "spreadsheet_error",
            "holds a spreadsheet's formula error (such as #N/A or #NAME?), not a name: correct the cell",
            "contient une erreur de formule du tableur (comme #N/A ou #NOM?), pas un nom : corrigez la cellule",
        ));
        return None;
    }
    if looks_double_encoded(text) {
        errors.push(FieldError::new(
            pointer,
            "garbled_characters",
            "its accents look garbled (such as Ã© for é): the text was read in the wrong character set \
             (a UTF-8 file opened as Windows-1252, then saved); correct it before sending",
            "ses accents semblent altérés (comme Ã© pour é) : le texte a été lu dans le mauvais jeu de caractères \
             (un fichier UTF-8 ouvert en Windows-1252, puis enregistré) ; corrigez-le avant l'envoi",
        ));
        return None;
    }
    if text.len() == raw.len() {
        Some(raw)
    } else {
        Some(text.to_owned())
    }
}

/// What a spreadsheet shows in a cell whose formula failed, in English and French (Excel), and
/// LibreOffice's `Err:NNN`: copied into an export, it would be stored as a person's name or
/// place for good.
fn is_spreadsheet_error(text: &str) -> bool {
    const ERRORS: [&str; 14] = [
        "#N/A", "#N/D", "#NAME?", "#NOM?", "#VALUE!", "#VALEUR!", "#REF!", "#DIV/0!", "#NUM!", "#NOMBRE!", "#NULL!",
        "#NUL!", "#SPILL!", "#CALC!",
    ];
    ERRORS.iter().any(|e| text.eq_ignore_ascii_case(e))
        || text
            .strip_prefix("Err:")
            .is_some_and(|code| code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()))
}

/// UTF-8 text decoded as Windows-1252 and encoded again (mojibake): each accented letter
/// becomes `Ã` or `Â` and a character of U+0080–U+00BF or one of Windows-1252's
/// punctuation marks (`é` → `Ã©`, `É` → `Ã‰`, `à` → `Ã` and a no-break space). No name of
/// the region's languages, French, Ewe, Bambara or Wolof, writes such a pair.
/// So are decomposed accents (`Ä±` → `AiÌˆ`: a combining mark's first byte reads as `Ì` or `Í`)
/// and some of the region's own letters (`ŋ` → `Å‹`, `ɛ` → `É›`), where no typed text writes
/// the pair (`É”`, the garbled `ɔ`, is also `É` before a closing quote, and passes). The
/// replacement character `\u{FFFD}` is what a decoder writes for bytes it could not read.
fn looks_double_encoded(text: &str) -> bool {
    const WINDOWS_1252: &str = "€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ";
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let continuation = |next: &char| ('\u{80}'..='\u{BF}').contains(next) || WINDOWS_1252.contains(*next);
        let garbled = match c {
            '\u{FFFD}' => true,
            'Ã' | 'Â' => chars.peek().is_some_and(continuation),
            // Decomposed accents (`Ì`/`Í` and a byte of U+0300–U+036F) and `Ɔ`, `ƴ` (`Æ`), but not
            // before quotes or a no-break space, which typed text puts after a capital.
            'Ì' | 'Í' | 'Æ' => chars
                .peek()
                .is_some_and(|next| !"’‘“”«»·–—\u{A0}".contains(*next) && continuation(next)),
            // `ŋ`, `Ŋ` and `ɛ` only: `É”` (`ɔ`) is also a capital before a closing quote, `É—`
            // (`ɗ`) one before a dash.
            'Å' => chars.peek().is_some_and(|next| matches!(next, '‹' | 'Š')),
            'É' => chars.peek().is_some_and(|next| *next == '›'),
            _ => false,
        };
        if garbled {
            return true;
        }
    }
    false
}

/// A phone number without the spaces, dots and dashes people write between its digits.
/// A number a spreadsheet wrote with decimals (`22890123456.0`, `+22890123456,0`): one run of
/// digits, then a separator and zeros. Read as a phone, its dot went with the other separators
/// and its zero became a twelfth digit.
fn with_spreadsheet_decimals(raw: &str) -> bool {
    // One run: a number typed in groups (`+228 90 12 34.00`) is not a number cell's.
    let trimmed = raw.trim();
    let number = trimmed.strip_prefix('+').unwrap_or(trimmed);
    match number.rsplit_once(['.', ',']) {
        Some((whole, decimals)) => {
            whole.len() >= 6
                && whole.bytes().all(|b| b.is_ascii_digit())
                && (1..=2).contains(&decimals.len())
                && decimals.bytes().all(|b| b == b'0')
        }
        None => false,
    }
}

fn compact_phone(raw: &str) -> String {
    raw.chars()
        .filter(|c| !(c.is_whitespace() || matches!(c, '.' | '-')))
        .collect()
}

/// E.164 once spaces, dots and dashes are removed: `+`, then 8 to 15 digits, the first not 0.
/// `00`, the international call prefix dialled in West Africa, stands for the `+`.
pub fn parse_phone(raw: &str) -> Option<String> {
    if raw.len() > 64 || with_spreadsheet_decimals(raw) {
        return None;
    }
    let compact = compact_phone(raw);
    let compact = match compact.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => compact,
    };
    let digits = compact.strip_prefix('+')?;
    let ok = (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
    ok.then_some(compact)
}

impl BeneficiaryDraft {
    /// Checks every field with the shipped national id rules; every problem is listed, at
    /// pointers under `pointer_prefix` (`/principal`, `/dependants/1`).
    pub fn validate(self, pointer_prefix: &str, today: NaiveDate) -> Result<ValidBeneficiary, Vec<FieldError>> {
        self.validate_with(&NationalIdRules::SHIPPED, pointer_prefix, today)
    }

    pub fn validate_with(
        self,
        rules: &NationalIdRules,
        pointer_prefix: &str,
        today: NaiveDate,
    ) -> Result<ValidBeneficiary, Vec<FieldError>> {
        let p = |name: &str| format!("{pointer_prefix}/{name}");
        let mut errors = Vec::new();

        let national_id = self.national_id.and_then(|draft| {
            let base = p("national_id");
            let country = draft.country.or_else(|| {
                errors.push(FieldError::required(format!("{base}/country")));
                None
            });
            let id_type = draft.id_type.or_else(|| {
                errors.push(FieldError::required(format!("{base}/type")));
                None
            });
            let value = draft.value.or_else(|| {
                errors.push(FieldError::required(format!("{base}/value")));
                None
            });
            let (country, id_type, value) = (country?, id_type?, value?);
            match rules.parse_object(&country, &id_type, &value, &base) {
                Ok(id) => Some(id),
                Err(e) => {
                    errors.push(e);
                    None
                }
            }
        });

        let family_name = check_text(self.family_name, p("family_name"), MAX_NAME_CHARS, &mut errors);
        let given_names = check_text(self.given_names, p("given_names"), MAX_NAME_CHARS, &mut errors);

        let sex = match self.sex {
            None => {
                errors.push(FieldError::required(p("sex")));
                None
            }
            Some(raw) => Sex::parse(raw.trim()).or_else(|| {
                errors.push(FieldError::new(
                    p("sex"),
                    "unknown_value",
                    "must be F or M",
                    "doit être F ou M",
                ));
                None
            }),
        };

        let birth = check_birth_date(
            self.birth_date.as_deref(),
            self.birth_date_precision.as_deref(),
            pointer_prefix,
            today,
            &mut errors,
        );

        let phone = self.phone.and_then(|raw| {
            parse_phone(&raw).or_else(|| {
                let en = "must be an international number in E.164 form: + then 8 to 15 digits, such as +22890123456";
                let fr =
                    "doit être un numéro international au format E.164 : + puis 8 à 15 chiffres, par exemple +22890123456";
                errors.push(match phone_hint(&raw) {
                    Some((why_en, why_fr)) => {
                        FieldError::new(p("phone"), "invalid_phone", format!("{en}; {why_en}"), format!("{fr} ; {why_fr}"))
                    }
                    None => FieldError::new(p("phone"), "invalid_phone", en, fr),
                });
                None
            })
        });

        let locality = self.locality.and_then(|draft| {
            let base = p("locality");
            let parts = [draft.region, draft.district, draft.commune];
            let names = ["region", "district", "commune"];
            let given = parts.iter().filter(|v| v.is_some()).count();
            let mut checked = Vec::with_capacity(3);
            for (name, part) in names.into_iter().zip(parts) {
                let at = format!("{base}/{name}");
                if part.is_none() && given > 0 {
                    errors.push(FieldError::new(
                        at,
                        "incomplete_locality",
                        "a locality has a region, a district and a commune, or none of them",
                        "une localité doit comporter une région, un district et une commune, ou aucun des trois",
                    ));
                    checked.push(None);
                } else {
                    checked.push(check_text(part, at, MAX_LOCALITY_CHARS, &mut errors));
                }
            }
            let mut checked = checked.into_iter().flatten();
            let (region, district, commune) = (checked.next()?, checked.next()?, checked.next()?);
            Some(Locality {
                region,
                district,
                commune,
            })
        });

        match (family_name, given_names, sex, birth) {
            (Some(family_name), Some(given_names), Some(sex), Some((birth_date, birth_date_precision)))
                if errors.is_empty() =>
            {
                Ok(ValidBeneficiary {
                    national_id,
                    family_name,
                    given_names,
                    sex,
                    birth_date,
                    birth_date_precision,
                    phone,
                    locality,
                })
            }
            _ => Err(errors),
        }
    }
}

/// A birth date as registration reads it (`"1985"` is 1 January 1985, year-only), or `None`
/// when registration would refuse it.
pub fn read_birth_date(
    raw: &str,
    precision: Option<&str>,
    today: NaiveDate,
) -> Option<(NaiveDate, BirthDatePrecision)> {
    check_birth_date(Some(raw), precision, "", today, &mut Vec::new())
}

/// `YYYY-MM-DD` (day precision unless told `year`, which needs `-01-01`) or a bare `YYYY`
/// (year precision); from 1900 to today.
fn check_birth_date(
    raw: Option<&str>,
    precision: Option<&str>,
    prefix: &str,
    today: NaiveDate,
    errors: &mut Vec<FieldError>,
) -> Option<(NaiveDate, BirthDatePrecision)> {
    let at = format!("{prefix}/birth_date");
    let precision = match precision.map(str::trim) {
        None => None,
        Some(s) => match BirthDatePrecision::parse(s) {
            Some(p) => Some(p),
            None => {
                errors.push(FieldError::new(
                    format!("{prefix}/birth_date_precision"),
                    "unknown_value",
                    "must be day or year",
                    "doit être day ou year",
                ));
                return None;
            }
        },
    };
    let Some(raw) = raw.map(str::trim) else {
        errors.push(FieldError::required(at));
        return None;
    };
    let year_only = raw.len() == 4 && raw.bytes().all(|b| b.is_ascii_digit());
    let parsed = if year_only {
        match precision {
            Some(BirthDatePrecision::Day) => {
                errors.push(FieldError::new(
                    at,
                    "invalid_date",
                    "a birth date with day precision must be YYYY-MM-DD",
                    "une date de naissance précise au jour doit être au format AAAA-MM-JJ",
                ));
                return None;
            }
            _ => raw
                .parse()
                .ok()
                .and_then(|y| NaiveDate::from_ymd_opt(y, 1, 1))
                .map(|d| (d, BirthDatePrecision::Year)),
        }
    } else {
        parse_date(raw).map(|d| (d, precision.unwrap_or(BirthDatePrecision::Day)))
    };
    let Some((date, precision)) = parsed else {
        errors.push(invalid_date_of(
            &at,
            raw,
            "must be a calendar date YYYY-MM-DD, or YYYY when only the year is known",
            "doit être une date valide au format AAAA-MM-JJ, ou AAAA si seule l'année est connue",
        ));
        return None;
    };
    if precision == BirthDatePrecision::Year && (date.month(), date.day()) != (1, 1) {
        errors.push(FieldError::new(
            at,
            "invalid_date",
            "a year-only birth date is written YYYY-01-01",
            "une date de naissance réduite à l'année s'écrit AAAA-01-01",
        ));
        return None;
    }
    if date > today {
        errors.push(FieldError::new(
            at,
            "birth_date_in_future",
            "must not be in the future",
            "ne doit pas être dans le futur",
        ));
        return None;
    }
    if date.year() < MIN_BIRTH_YEAR {
        errors.push(FieldError::new(
            at,
            "out_of_range",
            format!("must be in {MIN_BIRTH_YEAR} or later"),
            format!("ne doit pas être antérieure à {MIN_BIRTH_YEAR}"),
        ));
        return None;
    }
    Some((date, precision))
}

/// Names folded for comparison: compatibility-decomposed (NFKD, which also splits ligatures and
/// full-width letters that NFD keeps), combining marks dropped, lower-cased; apostrophes dropped
/// (N'Diaye = Ndiaye), hyphens and other punctuation read as spaces, white space collapsed. The
/// family name comes first, then the given names, one space between. Used to find likely
/// duplicates, never to store or show a name.
pub fn match_key(family_name: &str, given_names: &str) -> String {
    let mut key = String::with_capacity(family_name.len() + given_names.len() + 1);
    let mut pending_space = false;
    for c in family_name
        .chars()
        .chain(std::iter::once(' '))
        .chain(given_names.chars())
        .nfkd()
    {
        if unicode_normalization::char::is_combining_mark(c)
            || matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{02BC}' | '`' | '\u{00B4}')
        {
            continue;
        }
        if c.is_alphanumeric() {
            if pending_space && !key.is_empty() {
                key.push(' ');
            }
            pending_space = false;
            key.extend(c.to_lowercase());
        } else {
            pending_space = true;
        }
    }
    key
}

/// What a likely duplicate shares with a person: folded names, sex and birth.
///
/// Birth dates compare by precision: two day-precision dates must be equal; when either is
/// year-only, the same year is enough (someone registered as born "1990" may be the person born
/// on 1990-05-03). Storage should look up candidates on `match_key`, `sex` and
/// `birth_date_range()` (the whole birth year), then keep those for which `matches` holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LikelyMatch {
    pub match_key: String,
    pub birth_date: NaiveDate,
    pub birth_date_precision: BirthDatePrecision,
    pub sex: Sex,
}

impl LikelyMatch {
    pub fn new(
        family_name: &str,
        given_names: &str,
        birth_date: NaiveDate,
        birth_date_precision: BirthDatePrecision,
        sex: Sex,
    ) -> Self {
        LikelyMatch {
            match_key: match_key(family_name, given_names),
            birth_date,
            birth_date_precision,
            sex,
        }
    }

    pub fn birth_year(&self) -> i32 {
        self.birth_date.year()
    }

    /// The first and last day of the birth year: every stored birth date that could match.
    pub fn birth_date_range(&self) -> (NaiveDate, NaiveDate) {
        let year = self.birth_date.year();
        let first = NaiveDate::from_ymd_opt(year, 1, 1).unwrap_or(self.birth_date);
        let last = NaiveDate::from_ymd_opt(year, 12, 31).unwrap_or(self.birth_date);
        (first, last)
    }

    pub fn matches(&self, other: &LikelyMatch) -> bool {
        let same_birth = match (self.birth_date_precision, other.birth_date_precision) {
            (BirthDatePrecision::Day, BirthDatePrecision::Day) => self.birth_date == other.birth_date,
            _ => self.birth_date.year() == other.birth_date.year(),
        };
        same_birth && self.sex == other.sex && self.match_key == other.match_key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_year_on_either_side_compares_years() {
        let day = |s: &str| {
            (
                NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap(),
                BirthDatePrecision::Day,
            )
        };
        let year = |y: i32| (NaiveDate::from_ymd_opt(y, 1, 1).unwrap(), BirthDatePrecision::Year);
        assert!(births_agree(day("2015-07-30"), day("2015-07-30")));
        assert!(!births_agree(day("2015-07-30"), day("2015-07-31")));
        assert!(births_agree(day("2015-07-30"), year(2015)));
        assert!(births_agree(year(2015), day("2015-12-31")));
        assert!(births_agree(year(2015), year(2015)));
        assert!(!births_agree(year(2015), day("2016-01-01")));
    }

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    fn stored(national_id: Option<NationalId>) -> Beneficiary {
        Beneficiary {
            id: "p1".into(),
            national_id,
            family_name: "Agbéko".into(),
            given_names: "Akossiwa Élise".into(),
            sex: Sex::F,
            birth_date: d("1988-01-01"),
            birth_date_precision: BirthDatePrecision::Year,
            phone: Some("+22890123456".into()),
            locality: None,
            created_at: DateTime::<Utc>::default(),
            version: 3,
            merged_into: None,
            merged_by: None,
            erased_at: None,
        }
    }

    /// A stored value that a rule added since would refuse does not refuse a correction of
    /// another field, and is kept as it is; sent again, it is judged.
    #[test]
    fn a_correction_judges_only_what_it_sends() {
        let today = d("2026-12-05");
        let mut person = stored(None);
        person.given_names = "Nd\u{200D}èye".into();
        let fixed = person
            .corrected(
                Correction {
                    phone: Some(Some("+22890000001".into())),
                    ..Correction::default()
                },
                today,
            )
            .unwrap();
        assert_eq!(fixed.given_names, person.given_names);
        assert_eq!(fixed.phone.as_deref(), Some("+22890000001"));
        assert_eq!(fixed.locality, person.locality);
        let errors = person
            .corrected(
                Correction {
                    given_names: Some(person.given_names.clone()),
                    ..Correction::default()
                },
                today,
            )
            .unwrap_err();
        assert_eq!(errors[0].field, "/given_names");
    }

    #[test]
    fn a_correction_changes_names_and_contacts_never_identity() {
        let today = d("2026-12-05");
        let person = stored(None);
        let niu = NationalId::parse("TG", "NIU", "222233334444", "/v").unwrap();
        let fixed = person
            .corrected(
                Correction {
                    national_id: Some(niu.clone()),
                    given_names: Some("  Akossiwa ".into()),
                    phone: Some(None),
                    ..Correction::default()
                },
                today,
            )
            .unwrap();
        assert_eq!(fixed.given_names, "Akossiwa");
        assert_eq!(fixed.phone, None);
        assert_eq!(fixed.national_id, Some(niu.clone()));
        // A year-only birth date, the sex, the id and the version stay as they were.
        assert_eq!(
            (fixed.birth_date, fixed.birth_date_precision, fixed.sex, fixed.version),
            (person.birth_date, BirthDatePrecision::Year, Sex::F, 3)
        );
        assert_eq!(fixed.family_name, person.family_name);
        // A national id already recorded is kept whatever the correction carries.
        let other = NationalId::parse("TG", "NIU", "999988887777", "/v").unwrap();
        let kept = stored(Some(niu.clone()))
            .corrected(
                Correction {
                    national_id: Some(other),
                    ..Correction::default()
                },
                today,
            )
            .unwrap();
        assert_eq!(kept.national_id, Some(niu));
        // Each changed field is judged as at registration, at its own pointer.
        let errors = person
            .corrected(
                Correction {
                    family_name: Some("AgbÃ©ko".into()),
                    locality: Some(Some(LocalityDraft {
                        region: Some("Maritime".into()),
                        ..LocalityDraft::default()
                    })),
                    ..Correction::default()
                },
                today,
            )
            .unwrap_err();
        let found: Vec<(&str, &str)> = errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
        assert_eq!(
            found,
            [
                ("/family_name", "garbled_characters"),
                ("/locality/district", "incomplete_locality"),
                ("/locality/commune", "incomplete_locality"),
            ]
        );
    }

    /// The sample a deployment starts from is the shipped list, rule for rule.
    #[test]
    fn the_sample_rules_file_is_the_shipped_list() {
        let sample = include_str!("../../../deploy/national-id-rules.json");
        assert_eq!(
            NationalIdRules::from_json(sample).unwrap(),
            NationalIdRules::new(SHIPPED_RULES.to_vec())
        );
    }

    #[test]
    fn a_deployments_rules_replace_the_shipped_ones() {
        let rules = NationalIdRules::from_json(
            r#"[{"country": "ML", "type": "NINA", "min_len": 13, "max_len": 15, "charset": "letters_and_digits"}]"#,
        )
        .unwrap();
        assert!(rules.parse("ml", "nina", "1234567890123", "/v").is_ok());
        assert!(NationalIdRules::SHIPPED
            .parse("ml", "nina", "1234567890123", "/v")
            .is_err());
        let unknown = rules.parse("TG", "NIU", "123456789012", "/v").unwrap_err();
        assert_eq!(unknown.code, "unknown_national_id_type");
        for (bad, says) in [
            ("[]", "no rule"),
            ("{}", "not a list"),
            (
                r#"[{"country": "ML", "type": "NINA", "min_len": 1, "max_len": 2, "charset": "digits", "x": 1}]"#,
                "not a list",
            ),
            (
                r#"[{"country": "mali", "type": "NINA", "min_len": 1, "max_len": 2, "charset": "digits"}]"#,
                "country",
            ),
            (
                r#"[{"country": "ZZ", "type": "NINA", "min_len": 1, "max_len": 2, "charset": "digits"}]"#,
                "country",
            ),
            (
                r#"[{"country": "ML", "type": "NI:NA", "min_len": 1, "max_len": 2, "charset": "digits"}]"#,
                "type",
            ),
            (
                r#"[{"country": "ML", "type": "NINA", "min_len": 3, "max_len": 2, "charset": "digits"}]"#,
                "lengths",
            ),
            (
                r#"[{"country": "ML", "type": "NINA", "min_len": 0, "max_len": 2, "charset": "digits"}]"#,
                "lengths",
            ),
            (
                r#"[{"country": "ML", "type": "NINA", "min_len": 1, "max_len": 2, "charset": "digits"},
                    {"country": "ML", "type": "NINA", "min_len": 1, "max_len": 3, "charset": "digits"}]"#,
                "second rule",
            ),
        ] {
            let refused = NationalIdRules::from_json(bad).unwrap_err();
            assert!(refused.contains(says), "{bad}: {refused}");
        }
    }

    fn today() -> NaiveDate {
        d("2026-03-15")
    }

    fn draft() -> BeneficiaryDraft {
        BeneficiaryDraft {
            family_name: Some("Mensah".into()),
            given_names: Some("Afi Délali".into()),
            sex: Some("F".into()),
            birth_date: Some("1990-05-03".into()),
            ..Default::default()
        }
    }

    fn codes(errors: &[FieldError]) -> Vec<(&str, &str)> {
        errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect()
    }

    #[test]
    fn each_shipped_national_id_type_is_checked() {
        let ok = [
            ("tg", "niu", "1234 5678 9012", "TG:NIU:123456789012"),
            ("ML", "NINA", "12345678901234k", "ML:NINA:12345678901234K"),
            ("sn", "cni", "1 234-567 89012", "SN:CNI:123456789012"),
            ("SN", "CNI", "1751199001234", "SN:CNI:1751199001234"),
            ("SN", "RNU", "ab-12c", "SN:RNU:AB12C"),
        ];
        for (c, t, v, compact) in ok {
            let id = NationalId::parse(c, t, v, "/national_id").unwrap();
            assert_eq!(id.to_compact(), compact);
            assert_eq!(NationalId::parse_compact(compact, "/q").unwrap(), id);
        }
        let bad = [
            ("TG", "NIU", "12345678901"),
            ("TG", "NIU", "1234567890123"),
            ("TG", "NIU", "12345678901A"),
            ("ML", "NINA", "1234567890123"),
            ("ML", "NINA", "12345678901234Ké"),
            ("SN", "CNI", "12345678901"),
            ("SN", "CNI", "123456789012345678"),
            ("SN", "RNU", "AB12"),
            ("SN", "RNU", "AAAAAAAAAAAAAAAAAAAAA"),
            ("TG", "NIU", ""),
        ];
        for (c, t, v) in bad {
            let e = NationalId::parse(c, t, v, "/national_id").unwrap_err();
            assert_eq!(e.code, "invalid_national_id", "{c}:{t}:{v}");
            assert_eq!(e.field, "/national_id");
        }
        let e = NationalId::parse("TG", "NIU", "12345", "/n").unwrap_err();
        assert!(e.en.contains("12 digits"), "{}", e.en);
        assert!(e.fr.contains("12 chiffres"), "{}", e.fr);
        let e = NationalId::parse("SN", "RNU", "1", "/n").unwrap_err();
        assert!(e.en.contains("5 to 20 letters and digits"), "{}", e.en);
    }

    #[test]
    fn unknown_national_id_types_and_shapes() {
        let e = NationalId::parse("FR", "INSEE", "1", "/n").unwrap_err();
        assert_eq!(e.code, "unknown_national_id_type");
        assert!(e.en.contains("TG:NIU, ML:NINA, SN:CNI, SN:RNU"));
        let e = NationalId::parse("TG", "NINA", "123456789012", "/n").unwrap_err();
        assert_eq!(e.code, "unknown_national_id_type");
        assert!(e.en.starts_with("unknown national id type TG:NINA;"), "{}", e.en);
        // A number given as the type (the fields swapped) is not echoed: it may be the person's.
        let e = NationalId::parse("TG", "90123456", "NIU", "/n").unwrap_err();
        assert_eq!(e.code, "unknown_national_id_type");
        assert!(!e.en.contains("90123456") && !e.fr.contains("90123456"), "{}", e.en);
        assert!(e.en.starts_with("unknown national id type; known"), "{}", e.en);
        assert_eq!(
            NationalId::parse_compact("TG-NIU-123456789012", "/query/national_id")
                .unwrap_err()
                .code,
            "invalid_national_id"
        );
        let huge = "1".repeat(3_000_000);
        assert_eq!(
            NationalId::parse("TG", "NIU", &huge, "/n").unwrap_err().code,
            "invalid_national_id"
        );
    }

    /// A country that is no country is the country's fault, at its own member: the type may be
    /// right.
    #[test]
    fn a_country_that_is_no_country_is_told_at_country() {
        let rules = &NationalIdRules::SHIPPED;
        for country in ["Togo", "", "XX", "a\u{1}b", "🇹🇬"] {
            let e = rules
                .parse_object(country, "NIU", "123456789012", "/beneficiary/national_id")
                .unwrap_err();
            assert_eq!(
                (e.field.as_str(), e.code.as_str()),
                ("/beneficiary/national_id/country", "invalid_country"),
                "{country:?}"
            );
        }
        let e = rules.parse_object("FR", "NIU", "123456789012", "/n").unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.code.as_str()),
            ("/n/type", "unknown_national_id_type")
        );
        assert!(rules.parse_object(" tg ", "niu", "1234 5678 9012", "/n").is_ok());
        // A deployment's rule for a code outside the list still holds.
        let own: NationalIdRules = serde_json::from_value(serde_json::json!([
            {"country": "XK", "type": "ID", "min_len": 1, "max_len": 9, "charset": "digits"}
        ]))
        .unwrap();
        assert!(own.parse_object("XK", "ID", "12", "/n").is_ok());
        assert_eq!(
            own.parse_object("XK", "NIU", "12", "/n").unwrap_err().code,
            "unknown_national_id_type"
        );
        assert_eq!(NationalId::parse("Togo", "NIU", "1", "/q").unwrap_err().field, "/q");
    }

    #[test]
    fn rules_are_data_a_deployment_may_replace() {
        let json = serde_json::json!([
            {"country": "TG", "type": "NIU", "min_len": 10, "max_len": 12, "charset": "digits"},
            {"country": "BF", "type": "CNIB", "min_len": 6, "max_len": 20, "charset": "letters_and_digits"}
        ]);
        let rules: NationalIdRules = serde_json::from_value(json).unwrap();
        assert_eq!(
            rules.parse("TG", "NIU", "1234567890", "/n").unwrap().to_compact(),
            "TG:NIU:1234567890"
        );
        assert!(rules.parse("bf", "cnib", "b 12345", "/n").is_ok());
        assert_eq!(
            rules.parse("SN", "RNU", "AB123", "/n").unwrap_err().code,
            "unknown_national_id_type"
        );
        assert_eq!(NationalIdRules::default().rules().len(), 4);
        let round = serde_json::to_value(&NationalIdRules::SHIPPED).unwrap();
        assert_eq!(round[0]["type"], "NIU");
        assert_eq!(
            serde_json::from_value::<NationalIdRules>(round).unwrap(),
            NationalIdRules::SHIPPED
        );
    }

    #[test]
    fn a_correction_sets_the_family_name_and_the_place() {
        let fixed = stored(None)
            .corrected(
                Correction {
                    family_name: Some("Agbéko-Mensah".into()),
                    locality: Some(Some(LocalityDraft {
                        region: Some("Maritime".into()),
                        district: Some("Zio".into()),
                        commune: Some("Tsévié".into()),
                    })),
                    ..Correction::default()
                },
                d("2026-12-05"),
            )
            .unwrap();
        assert_eq!(fixed.family_name, "Agbéko-Mensah");
        assert_eq!(
            fixed.locality,
            Some(Locality {
                region: "Maritime".into(),
                district: "Zio".into(),
                commune: "Tsévié".into(),
            })
        );
    }

    #[test]
    fn a_valid_drafts_match_key_folds_its_names() {
        assert_eq!(draft().validate("", today()).unwrap().match_key(), "mensah afi delali");
    }

    /// A name is at most 100 characters, however many bytes each takes (here 4).
    #[test]
    fn a_name_of_a_hundred_four_byte_letters_fits() {
        let with = |n: usize| {
            BeneficiaryDraft {
                family_name: Some("\u{20000}".repeat(n)),
                ..draft()
            }
            .validate("", today())
            .map(|_| ())
            .map_err(|e| codes(&e).iter().map(|(f, c)| format!("{f} {c}")).collect::<Vec<_>>())
        };
        assert_eq!(with(100), Ok(()));
        assert_eq!(with(101), Err(vec!["/family_name too_long".to_owned()]));
    }

    /// `Í` and `Æ` before a letter that is no byte of a garbled pair are names as typed.
    #[test]
    fn an_i_acute_or_ae_before_a_plain_letter_is_no_garbling() {
        for name in ["Íñigo", "Ævar"] {
            let b = BeneficiaryDraft {
                given_names: Some(name.into()),
                ..draft()
            }
            .validate("", today());
            assert_eq!(b.map(|b| b.given_names), Ok(name.to_owned()), "{name}");
        }
    }

    /// Up to 64 bytes of a phone are read, separators included.
    #[test]
    fn a_phone_of_sixty_four_bytes_is_read() {
        let padded = format!("{:<64}", "+228 90 12 34 56");
        assert_eq!(padded.len(), 64);
        assert_eq!(parse_phone(&padded).as_deref(), Some("+22890123456"));
    }

    /// As registration reads a birth date: a bare year is 1 January, known to the year.
    #[test]
    fn a_birth_date_is_read_as_registration_reads_it() {
        let today = d("2026-03-15");
        assert_eq!(
            read_birth_date("1985", None, today),
            Some((d("1985-01-01"), BirthDatePrecision::Year))
        );
        assert_eq!(
            read_birth_date("1985-03-02", None, today),
            Some((d("1985-03-02"), BirthDatePrecision::Day))
        );
        assert_eq!(read_birth_date("2090", None, today), None);
    }

    /// "12 digits" for a fixed length, "5 to 20 letters and digits" for a range, in both
    /// languages.
    #[test]
    fn a_rule_describes_a_fixed_length_or_a_range() {
        let rules = &NationalIdRules::SHIPPED;
        let niu = rules.rule("TG", "NIU").unwrap();
        assert_eq!(
            (niu.describe_en(), niu.describe_fr()),
            ("12 digits".into(), "12 chiffres".into())
        );
        let rnu = rules.rule("SN", "RNU").unwrap();
        assert_eq!(
            (rnu.describe_en(), rnu.describe_fr()),
            (
                "5 to 20 letters and digits".into(),
                "de 5 à 20 lettres et chiffres".into()
            )
        );
    }

    /// A deployment's type may hold digits and underscores, and a length may reach 64.
    #[test]
    fn a_deployments_rule_may_use_every_form_it_is_told() {
        let rules = NationalIdRules::from_json(
            r#"[{"country": "SN", "type": "CNI_2016", "min_len": 1, "max_len": 64, "charset": "digits"}]"#,
        )
        .unwrap();
        assert!(rules.parse("SN", "CNI_2016", &"7".repeat(64), "/n").is_ok());
        let refused = NationalIdRules::from_json(
            r#"[{"country": "SN", "type": "CNI", "min_len": 1, "max_len": 65, "charset": "digits"}]"#,
        )
        .unwrap_err();
        assert!(refused.contains("lengths"), "{refused}");
    }

    /// Spaces are ignored in a value: one padded with them up to the 256 bytes looked at reads.
    #[test]
    fn a_value_padded_to_the_bytes_looked_at_is_read() {
        let padded = format!("123456789012{}", " ".repeat(244));
        assert_eq!(padded.len(), 256);
        let id = NationalId::parse("TG", "NIU", &padded, "/n").unwrap();
        assert_eq!(id.to_compact(), "TG:NIU:123456789012");
    }

    /// A type's name with an underscore or a dash is still a name, echoed in the message.
    #[test]
    fn an_unknown_type_with_an_underscore_or_a_dash_is_named() {
        for (given, named) in [("carte_id", "TG:CARTE_ID"), ("Pass-Port", "TG:PASS-PORT")] {
            let e = NationalId::parse("TG", given, "123456789012", "/n").unwrap_err();
            assert!(
                e.en.starts_with(&format!("unknown national id type {named};")),
                "{}",
                e.en
            );
        }
    }

    /// A stored record of an earlier release has no version: it is the first.
    #[test]
    fn a_record_stored_without_a_version_is_version_one() {
        let mut json = serde_json::to_value(stored(None)).unwrap();
        json.as_object_mut().unwrap().remove("version");
        let read: Beneficiary = serde_json::from_value(json).unwrap();
        assert_eq!(read.version, 1);
    }

    #[test]
    fn a_records_match_key_folds_its_names() {
        assert_eq!(stored(None).match_key(), "agbeko akossiwa elise");
    }

    #[test]
    fn national_ids_serialize_with_type() {
        let id = NationalId::parse("sn", "cni", "1 234-567 89012", "/n").unwrap();
        let json = serde_json::to_value(&id).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"country": "SN", "type": "CNI", "value": "123456789012"})
        );
        assert_eq!(id.to_string(), "SN:CNI:123456789012");
    }

    #[test]
    fn a_phone_with_a_spreadsheets_decimals_is_refused() {
        for raw in [
            "+22890123456.0",
            "22890123456.0",
            "+22890123456,00",
            " 0022890123456.0 ",
        ] {
            assert_eq!(parse_phone(raw), None, "{raw}");
            assert!(phone_hint(raw).is_some_and(|(en, _)| en.contains("decimals")), "{raw}");
        }
        // Dots between groups are separators, as ever.
        assert_eq!(parse_phone("+228 90.12.34.50").as_deref(), Some("+22890123450"));
        assert_eq!(parse_phone("+228.90.12.34.50").as_deref(), Some("+22890123450"));
        assert_eq!(parse_phone("+228 90 12 34.00").as_deref(), Some("+22890123400"));
    }

    #[test]
    fn what_a_spreadsheet_made_of_a_phone_is_named() {
        let hint = |raw: &str| phone_hint(raw).map(|(en, _)| en).unwrap_or_default();
        assert!(hint("22890000101").contains("leading +"));
        assert!(hint("228 90 00 01 01").contains("leading +"));
        assert!(hint("2,2177E+11").contains("scientific"));
        assert!(hint("2.21770E+11").contains("scientific"));
        for other in ["+22890000101", "90 00", "abc", "1234567", "+2289000010112345"] {
            assert_eq!(phone_hint(other), None, "{other}");
        }
    }

    /// Text a spreadsheet mangled is refused rather than stored as a person's name for good;
    /// the region's real names pass.
    #[test]
    fn mangled_spreadsheet_text_is_refused() {
        let check = |text: &str| {
            let mut errors = Vec::new();
            check_text(Some(text.to_owned()), "/x".into(), MAX_NAME_CHARS, &mut errors);
            errors.first().map(|e| e.code.clone())
        };
        for garbled in [
            "KpÃ©lafia",
            "AÃ¯ssata",
            "Ã‰loÃ¯se",
            "TsÃ©viÃ©",
            "Ã\u{a0}Lomé",
            "NdÃ¨ye",
            "FranÃ§oise",
        ] {
            assert_eq!(check(garbled).as_deref(), Some("garbled_characters"), "{garbled}");
        }
        // Decomposed accents read in the wrong character set, letters of the region's own
        // alphabets so read, and what a decoder writes for bytes it could not read.
        for garbled in [
            "Ai\u{CC}\u{2C6}ssatou",
            "Nde\u{CC}\u{20AC}ye",
            "Ko\u{C5}\u{2039}",
            "K\u{C9}\u{203A}fua",
            "Kp\u{FFFD}lafia",
        ] {
            assert_eq!(check(garbled).as_deref(), Some("garbled_characters"), "{garbled}");
        }
        // Nothing visible, nothing but punctuation, a joiner outside joining letters, an accent
        // with no letter under it: no name at all, or one that looks like another.
        for invisible in [
            "\u{200D}",
            "\u{3164}",
            "\u{2800}",
            "'",
            "-.",
            "Nd\u{200D}\u{e8}ye",
            "Di\u{200C}allo",
            "\u{301}Ami",
            "Ami\u{E0041}",
            "Ami\u{600}",
            "Ami\u{F8FF}",
            "Ami\u{FFFF}",
            "Ami\u{FE0F}",
        ] {
            assert_eq!(check(invisible).as_deref(), Some("invalid_characters"), "{invisible:?}");
        }
        for error in ["#N/A", "#n/a", "#NAME?", "#NOM?", "#VALEUR!", "#DIV/0!", "Err:502"] {
            assert_eq!(check(error).as_deref(), Some("spreadsheet_error"), "{error}");
        }
        for name in [
            "Kpélafia",
            "Aïssata",
            "Éloïse",
            "É. Kodjo",
            "DÉ’KODJO",
            "Kossi «DÉDÉ»",
            "“DÉDÉ”",
            "KOUAMÉ·",
            "AGBÉ–KOFFI",
            "TSÉVIÉ—CENTRE",
            "Nde\u{300}ye",
            "عبد\u{200D}الله",
            "Kɔffi Ɛfua",
            "Ŋgom",
            "Ndèye",
            "Françoise",
            "JOÃO",
            "Ãngela",
            "N'Diaye",
            "#1 Rue",
            "Err:5",
            "Sène",
        ] {
            assert_eq!(check(name), None, "{name}");
        }
    }

    #[test]
    fn a_valid_draft_keeps_names_byte_exact() {
        // "Délali" with a precomposed é, "Aïssatou" with a combining diaeresis: kept as sent.
        let decomposed = "Ai\u{0308}ssatou";
        let b = BeneficiaryDraft {
            family_name: Some("  N'Diaye ".into()),
            given_names: Some(decomposed.into()),
            national_id: Some(NationalIdDraft {
                country: Some("sn".into()),
                id_type: Some("cni".into()),
                value: Some("1 234-567 89012".into()),
            }),
            phone: Some("+221 77 123 45 67".into()),
            locality: Some(LocalityDraft {
                region: Some("Thiès".into()),
                district: Some("Mbour".into()),
                commune: Some("Joal-Fadiouth".into()),
            }),
            ..draft()
        }
        .validate("/principal", today())
        .unwrap();
        assert_eq!(b.family_name, "N'Diaye");
        assert_eq!(b.given_names.as_bytes(), decomposed.as_bytes());
        assert_eq!(b.national_id.unwrap().to_compact(), "SN:CNI:123456789012");
        assert_eq!(b.phone.as_deref(), Some("+221771234567"));
        assert_eq!(b.locality.unwrap().region, "Thiès");
        assert_eq!(b.birth_date_precision, BirthDatePrecision::Day);

        let b = draft().validate("", today()).unwrap();
        assert_eq!(b.given_names, "Afi Délali");
        let serialized = serde_json::to_value(b.into_beneficiary("ben-1".into(), Utc::now())).unwrap();
        assert_eq!(serialized["given_names"], "Afi Délali");
        assert_eq!(serialized["sex"], "F");
        assert_eq!(serialized["birth_date_precision"], "day");
    }

    #[test]
    fn a_huge_name_is_too_long_at_once() {
        let huge = "é".repeat(1_000_000); // 2 MB
        let started = std::time::Instant::now();
        let errors = BeneficiaryDraft {
            family_name: Some(huge),
            ..draft()
        }
        .validate("/principal", today())
        .unwrap_err();
        assert_eq!(codes(&errors), [("/principal/family_name", "too_long")]);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let limit = "é".repeat(MAX_NAME_CHARS);
        assert!(BeneficiaryDraft {
            family_name: Some(limit),
            ..draft()
        }
        .validate("", today())
        .is_ok());
        let over = "a".repeat(MAX_NAME_CHARS + 1);
        assert_eq!(
            codes(
                &BeneficiaryDraft {
                    given_names: Some(over),
                    ..draft()
                }
                .validate("", today())
                .unwrap_err()
            ),
            [("/given_names", "too_long")]
        );
    }

    #[test]
    fn every_problem_is_listed_at_its_pointer() {
        let errors = BeneficiaryDraft {
            national_id: Some(NationalIdDraft {
                country: Some("TG".into()),
                id_type: Some("NIU".into()),
                value: Some("12".into()),
            }),
            family_name: Some("   ".into()),
            given_names: Some("Kofi\nAmi".into()),
            sex: Some("X".into()),
            birth_date: Some("2090-01-01".into()),
            birth_date_precision: None,
            phone: Some("228 90 12 34 56 78 90 12".into()),
            locality: Some(LocalityDraft {
                region: Some("Maritime".into()),
                district: None,
                commune: Some("".into()),
            }),
        }
        .validate("/dependants/1", today())
        .unwrap_err();
        assert_eq!(
            codes(&errors),
            [
                ("/dependants/1/national_id/value", "invalid_national_id"),
                ("/dependants/1/family_name", "empty"),
                ("/dependants/1/given_names", "invalid_characters"),
                ("/dependants/1/sex", "unknown_value"),
                ("/dependants/1/birth_date", "birth_date_in_future"),
                ("/dependants/1/phone", "invalid_phone"),
                ("/dependants/1/locality/district", "incomplete_locality"),
                ("/dependants/1/locality/commune", "empty"),
            ]
        );
        let errors = BeneficiaryDraft {
            national_id: Some(NationalIdDraft::default()),
            ..Default::default()
        }
        .validate("/principal", today())
        .unwrap_err();
        assert_eq!(
            codes(&errors),
            [
                ("/principal/national_id/country", "required"),
                ("/principal/national_id/type", "required"),
                ("/principal/national_id/value", "required"),
                ("/principal/family_name", "required"),
                ("/principal/given_names", "required"),
                ("/principal/sex", "required"),
                ("/principal/birth_date", "required"),
            ]
        );
        for (country, fault) in [
            ("FR", ("/principal/national_id/type", "unknown_national_id_type")),
            ("ZZ", ("/principal/national_id/country", "invalid_country")),
        ] {
            let errors = BeneficiaryDraft {
                national_id: Some(NationalIdDraft {
                    country: Some(country.into()),
                    id_type: Some("X".into()),
                    value: Some("1".into()),
                }),
                ..draft()
            }
            .validate("/principal", today())
            .unwrap_err();
            assert_eq!(codes(&errors), [fault]);
        }
    }

    #[test]
    fn birth_dates_day_year_future_and_range() {
        let check = |date: &str, precision: Option<&str>| {
            BeneficiaryDraft {
                birth_date: Some(date.into()),
                birth_date_precision: precision.map(Into::into),
                ..draft()
            }
            .validate("", today())
            .map(|b| (b.birth_date, b.birth_date_precision))
            .map_err(|e| e[0].code.clone())
        };
        assert_eq!(check("1985", None), Ok((d("1985-01-01"), BirthDatePrecision::Year)));
        assert_eq!(
            check("1985", Some("year")),
            Ok((d("1985-01-01"), BirthDatePrecision::Year))
        );
        assert_eq!(
            check("1985-01-01", Some("year")),
            Ok((d("1985-01-01"), BirthDatePrecision::Year))
        );
        assert_eq!(
            check("1985-01-01", None),
            Ok((d("1985-01-01"), BirthDatePrecision::Day))
        );
        assert_eq!(check("1985-06-01", Some("year")), Err("invalid_date".into()));
        assert_eq!(check("1985", Some("day")), Err("invalid_date".into()));
        assert_eq!(check("1985-01-01", Some("month")), Err("unknown_value".into()));
        assert_eq!(check("2090-01-01", None), Err("birth_date_in_future".into()));
        assert_eq!(check("2090", None), Err("birth_date_in_future".into()));
        assert_eq!(check("2026", None), Ok((d("2026-01-01"), BirthDatePrecision::Year)));
        assert_eq!(
            check("2026-03-15", None),
            Ok((d("2026-03-15"), BirthDatePrecision::Day))
        );
        assert_eq!(check("2026-03-16", None), Err("birth_date_in_future".into()));
        assert_eq!(check("1899-12-31", None), Err("out_of_range".into()));
        assert_eq!(check("1899", None), Err("out_of_range".into()));
        assert_eq!(
            check("1900-01-01", None),
            Ok((d("1900-01-01"), BirthDatePrecision::Day))
        );
        for bad in [
            "1990-02-30",
            "1990-2-3",
            "03/05/1990",
            "90",
            "19900503",
            "",
            "+1990-01-01",
        ] {
            assert_eq!(check(bad, None), Err("invalid_date".into()), "{bad}");
        }
    }

    #[test]
    fn phones_are_e164() {
        assert_eq!(parse_phone("+22890123456").as_deref(), Some("+22890123456"));
        assert_eq!(parse_phone("+228 90 12-34.56").as_deref(), Some("+22890123456"));
        assert_eq!(parse_phone("+12345678").as_deref(), Some("+12345678"));
        assert_eq!(parse_phone("+123456789012345").as_deref(), Some("+123456789012345"));
        // The international call prefix for the +.
        assert_eq!(parse_phone("00221 77 123 45 67").as_deref(), Some("+221771234567"));
        for bad in [
            "000221771234567",
            "00",
            "22890123456",
            "+1234567",
            "+1234567890123456",
            "+022890123456",
            "+2289012345a",
            "++22890123456",
            "",
        ] {
            assert_eq!(parse_phone(bad), None, "{bad}");
        }
        assert_eq!(parse_phone(&"1".repeat(1000)), None);
    }

    #[test]
    fn match_keys_fold_accents_case_and_punctuation() {
        assert_eq!(match_key("N'Diaye", "Aïssatou"), "ndiaye aissatou");
        assert_eq!(match_key("N'Diaye", "Aïssatou"), match_key("ndiaye ", " AISSATOU"));
        assert_eq!(
            match_key("NDIAYE", "Ai\u{0308}ssatou"),
            match_key("N’Diaye", "Aïssatou")
        );
        assert_eq!(
            match_key("Kéita-Traoré", "Mamadou  Lamine"),
            "keita traore mamadou lamine"
        );
        assert_eq!(
            match_key("Kéita Traoré", "Mamadou-Lamine"),
            "keita traore mamadou lamine"
        );
        assert_eq!(match_key("Œdipe", "ﬁfi"), "œdipe fifi");
        assert_ne!(match_key("Diallo", "Fatou"), match_key("Diallo", "Fatoumata"));
    }

    #[test]
    fn likely_matches_compare_years_when_only_the_year_is_known() {
        let day = LikelyMatch::new("Traoré", "Awa", d("1990-05-03"), BirthDatePrecision::Day, Sex::F);
        let year = LikelyMatch::new("TRAORE", "awa", d("1990-01-01"), BirthDatePrecision::Year, Sex::F);
        let other_day = LikelyMatch::new("Traore", "Awa", d("1990-05-04"), BirthDatePrecision::Day, Sex::F);
        let other_year = LikelyMatch::new("Traore", "Awa", d("1991-01-01"), BirthDatePrecision::Year, Sex::F);
        let male = LikelyMatch::new("Traore", "Awa", d("1990-05-03"), BirthDatePrecision::Day, Sex::M);
        assert!(day.matches(&year) && year.matches(&day));
        assert!(other_day.matches(&year));
        assert!(!day.matches(&other_day));
        assert!(!year.matches(&other_year));
        assert!(!day.matches(&male));
        assert_eq!(day.birth_date_range(), (d("1990-01-01"), d("1990-12-31")));
        assert_eq!(year.birth_year(), 1990);
    }

    #[test]
    fn a_national_id_match_needs_the_same_sex_and_birth() {
        let id = |sex, date: &str, precision| Identity {
            sex,
            birth_date: d(date),
            birth_date_precision: precision,
        };
        let day = id(Sex::F, "1990-05-03", BirthDatePrecision::Day);
        let agree = |a: &Identity, b: &Identity| a.agrees_with(b) && b.agrees_with(a);
        assert!(agree(&day, &day));
        // A year-only birth agrees with any day of that year, either way round.
        assert!(agree(&day, &id(Sex::F, "1990-01-01", BirthDatePrecision::Year)));
        assert!(agree(
            &id(Sex::F, "1990-01-01", BirthDatePrecision::Year),
            &id(Sex::F, "1990-01-01", BirthDatePrecision::Year)
        ));
        // Stored as 1 January, a year-only birth is no day: 1 January of another year disagrees,
        // and so does a full date of 1 January when neither is year-only and the days differ.
        assert!(!agree(&day, &id(Sex::F, "1991-01-01", BirthDatePrecision::Year)));
        assert!(!agree(&day, &id(Sex::F, "1990-01-01", BirthDatePrecision::Day)));
        assert!(!agree(&day, &id(Sex::F, "1990-05-04", BirthDatePrecision::Day)));
        assert!(!agree(&day, &id(Sex::M, "1990-05-03", BirthDatePrecision::Day)));
        assert!(!agree(
            &id(Sex::F, "1990-01-01", BirthDatePrecision::Year),
            &id(Sex::M, "1990-01-01", BirthDatePrecision::Year)
        ));
    }
}
