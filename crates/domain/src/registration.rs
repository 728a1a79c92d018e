//! Registrations (API.md §5): one household joining one product, checked whole, every problem at
//! its JSON Pointer. The same drafts serve `POST /v1/registrations`, each NDJSON line of a bulk
//! upload and each household of a CSV file.

use std::collections::HashSet;

use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::beneficiary::{
    invalid_date_of, parse_date, BeneficiaryDraft, LikelyMatch, LocalityDraft, NationalId, NationalIdDraft,
    NationalIdRules, ValidBeneficiary,
};
use crate::coverage::Relationship;
use crate::eligibility::{household_errors, BirthDatePrecision, DependantFacts};
use crate::error::FieldError;
use crate::product::ProductVersion;

/// Dependants one registration may list, whatever the product allows.
pub const MAX_DEPENDANTS: usize = 100;
pub const MAX_MEMBER_NUMBER_CHARS: usize = 50;

/// A mutuelle's member number: 1 to 50 letters, digits, `-`, `/` and `.` (`TSV-0042/2`).
/// Stored as written, compared without regard to case (`tsv-0042/2` is the same number): a
/// front desk types what the card shows, in whatever case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberNumber(String);

impl MemberNumber {
    /// Surrounding white space is ignored; letters keep their case.
    pub fn parse(s: &str) -> Option<MemberNumber> {
        let s = s.trim();
        let ok = (1..=MAX_MEMBER_NUMBER_CHARS).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'.'))
            && !shown_as_a_month(s);
        ok.then(|| MemberNumber(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// What two spellings of one number share; see [`member_number_key`].
    pub fn key(&self) -> String {
        member_number_key(&self.0)
    }
}

/// The form in which member numbers are compared: ASCII lower case, which is also what SQL's
/// `lower` gives for them on both databases (they are ASCII), so that the unique index
/// `(organization, lower(member_number))` and the service agree on what is one number.
pub fn member_number_key(number: &str) -> String {
    number.to_ascii_lowercase()
}

impl std::fmt::Display for MemberNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DependantDraft {
    pub relationship: Option<String>,
    pub member_number: Option<String>,
    pub beneficiary: BeneficiaryDraft,
}

/// A registration as received, nothing checked yet. `product` is resolved by the caller (the
/// body's, or a bulk upload's default) before `validate`, which does not look at it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrationDraft {
    pub product: Option<String>,
    pub member_number: Option<String>,
    pub start_date: Option<String>,
    pub paid_through: Option<String>,
    pub principal: BeneficiaryDraft,
    pub dependants: Vec<DependantDraft>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidDependant {
    pub relationship: Relationship,
    /// The dependant's own member number, when the mutuelle gives one.
    pub member_number: Option<MemberNumber>,
    pub beneficiary: ValidBeneficiary,
}

/// A registration that passed every rule: storage matches or creates each person, then writes
/// the coverages, all or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRegistration {
    pub product: Option<String>,
    pub member_number: MemberNumber,
    pub start_date: NaiveDate,
    pub paid_through: Option<NaiveDate>,
    pub principal: ValidBeneficiary,
    pub dependants: Vec<ValidDependant>,
}

/// A number a spreadsheet took for a date and shows as a month, as office software writes one
/// (`5/2026` shown `mai-26` or `nov.-26` in French, `May-26` in English): no mutuelle numbers
/// its members so, and a household posted again under it would be registered a second time.
/// Only those spellings, case included: `MAR-26` (a region's code, say) is a number like any.
/// That numbers are compared without regard to case does not make `Mar-26` one: what is judged
/// is the text received, and no spreadsheet shows a month otherwise than so (`MAR-26` typed in a
/// cell formatted as a date comes back `Mar-26`, and is refused with the hint then). The French
/// names with accents (`févr.`, `août`, `déc.`) never pass the characters `parse` allows, but
/// they still give the hint for an invalid number.
fn shown_as_a_month(s: &str) -> bool {
    const MONTHS: [&str; 24] = [
        "janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc.", "Jan",
        "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    match s.rsplit_once('-') {
        Some((month, year)) => year.len() == 2 && year.bytes().all(|b| b.is_ascii_digit()) && MONTHS.contains(&month),
        None => false,
    }
}

/// What a spreadsheet made of a member number, when that can be told: a date shown as a month,
/// or a long number in scientific notation.
fn member_number_hint(raw: &str) -> Option<(&'static str, &'static str)> {
    let raw = raw.trim();
    if shown_as_a_month(raw) {
        return Some((
            "a spreadsheet read it as a date and shows a month: format the column as Text and type the number again, or the household would be another",
            "un tableur l'a lu comme une date et affiche un mois : mettez la colonne au format Texte et saisissez à nouveau le numéro, sans quoi ce serait un autre ménage",
        ));
    }
    if crate::beneficiary::in_scientific_notation(raw) {
        return Some((
            "a spreadsheet wrote it in scientific notation (such as 1,00E+11): format the column as Text and type the number again",
            "un tableur l'a écrit en notation scientifique (comme 1,00E+11) : mettez la colonne au format Texte et saisissez à nouveau le numéro",
        ));
    }
    None
}

fn invalid_member_number(pointer: String, raw: &str) -> FieldError {
    let en = format!("must be 1 to {MAX_MEMBER_NUMBER_CHARS} letters, digits, dashes, slashes or dots");
    let fr =
        format!("doit compter de 1 à {MAX_MEMBER_NUMBER_CHARS} lettres, chiffres, tirets, barres obliques ou points");
    match member_number_hint(raw) {
        Some((why_en, why_fr)) => FieldError::new(
            pointer,
            "invalid_format",
            format!("{en}; {why_en}"),
            format!("{fr} ; {why_fr}"),
        ),
        None => FieldError::new(pointer, "invalid_format", en, fr),
    }
}

fn too_many_dependants(pointer: String) -> FieldError {
    FieldError::new(
        pointer,
        "too_many_dependants",
        format!("a registration lists at most {MAX_DEPENDANTS} dependants"),
        format!("une inscription compte au plus {MAX_DEPENDANTS} ayants droit"),
    )
}

fn dependant_relationship(raw: Option<&str>, at: &str, errors: &mut Vec<FieldError>) -> Option<Relationship> {
    match raw {
        None => {
            errors.push(FieldError::required(format!("{at}/relationship")));
            None
        }
        Some(raw) => Relationship::parse_dependant(raw.trim()).or_else(|| {
            errors.push(FieldError::new(
                format!("{at}/relationship"),
                "unknown_value",
                "must be spouse, child, parent or other (a household has one principal)",
                "doit être spouse, child, parent ou other (un ménage a un seul adhérent principal)",
            ));
            None
        }),
    }
}

/// A dependant joining a household already registered (`POST /v1/coverages/{id}/dependants`):
/// a birth, a marriage. The household's own rules were checked when it registered; here the
/// dependant's, with the child age limit on the dependant's own `start_date`. How many
/// dependants the household already has is storage's to count, under its lock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddedDependantDraft {
    pub dependant: DependantDraft,
    pub start_date: Option<String>,
}

/// The household an added dependant joins, as its principal's coverage says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HouseholdSpan {
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
}

impl AddedDependantDraft {
    pub fn validate_with(
        self,
        rules: &NationalIdRules,
        product: &ProductVersion,
        household: HouseholdSpan,
        today: NaiveDate,
    ) -> Result<(ValidDependant, NaiveDate), Vec<FieldError>> {
        let mut errors = Vec::new();
        let start_date = match self.start_date.as_deref() {
            None => {
                errors.push(FieldError::required("/start_date"));
                None
            }
            Some(raw) => optional_date(Some(raw), "/start_date".into(), &mut errors),
        };
        let start_date = start_date.filter(|&d| match crate::dates::check(d, "/start_date", today) {
            Some(e) => {
                errors.push(e);
                false
            }
            None if d < household.start_date => {
                errors.push(FieldError::new(
                    "/start_date",
                    "before_household_start",
                    format!(
                        "must not be before the household's start_date, {}",
                        household.start_date
                    ),
                    format!(
                        "ne doit pas précéder la date de début du ménage, le {}",
                        household.start_date
                    ),
                ));
                false
            }
            None if household.end_date.is_some_and(|end| d > end) => {
                let end = household.end_date.unwrap_or(d);
                errors.push(FieldError::new(
                    "/start_date",
                    "after_household_end",
                    format!("must not be after the household's end_date, {end}"),
                    format!("ne doit pas être postérieure à la date de fin du ménage, le {end}"),
                ));
                false
            }
            None => true,
        });
        let relationship = dependant_relationship(self.dependant.relationship.as_deref(), "", &mut errors);
        let member_number = self.dependant.member_number.as_deref().and_then(|raw| {
            MemberNumber::parse(raw).or_else(|| {
                errors.push(invalid_member_number("/member_number".into(), raw));
                None
            })
        });
        let beneficiary = self
            .dependant
            .beneficiary
            .validate_with(rules, "", today)
            .map_err(|e| errors.extend(e))
            .ok();
        if let (Some(b), Some(start)) = (&beneficiary, start_date) {
            if crate::eligibility::born_after(b.birth_date, b.birth_date_precision, start) {
                errors.push(crate::eligibility::born_after_start("/birth_date".into(), start));
            }
        }
        if let (Some(relationship), Some(b), Some(start)) = (relationship, &beneficiary, start_date) {
            let facts = DependantFacts {
                relationship,
                birth_date: b.birth_date,
                birth_date_precision: b.birth_date_precision,
            };
            for e in household_errors(product, start, &[facts]) {
                // One dependant: only its age can break a rule here ("/dependants/0/birth_date").
                if let Some(field) = e.field.strip_prefix("/dependants/0") {
                    errors.push(FieldError {
                        field: field.to_owned(),
                        ..e
                    });
                }
            }
        }
        match (relationship, beneficiary, start_date) {
            (Some(relationship), Some(beneficiary), Some(start)) if errors.is_empty() => Ok((
                ValidDependant {
                    relationship,
                    member_number,
                    beneficiary,
                },
                start,
            )),
            _ => Err(errors),
        }
    }
}

fn optional_date(raw: Option<&str>, pointer: String, errors: &mut Vec<FieldError>) -> Option<NaiveDate> {
    let raw = raw?;
    parse_date(raw.trim()).or_else(|| {
        errors.push(invalid_date_of(
            &pointer,
            raw,
            "must be a calendar date YYYY-MM-DD",
            "doit être une date valide au format AAAA-MM-JJ",
        ));
        None
    })
}

impl RegistrationDraft {
    /// Every rule, the product's household rules included, with the shipped national id rules.
    pub fn validate(self, product: &ProductVersion, today: NaiveDate) -> Result<ValidRegistration, Vec<FieldError>> {
        self.check(&NationalIdRules::SHIPPED, Some(product), today)
    }

    pub fn validate_with(
        self,
        rules: &NationalIdRules,
        product: &ProductVersion,
        today: NaiveDate,
    ) -> Result<ValidRegistration, Vec<FieldError>> {
        self.check(rules, Some(product), today)
    }

    /// Every problem that can be found without the product, for a body whose product is missing
    /// or unknown: the caller reports that at `/product` and lists these beside it.
    pub fn errors_without_product(self, rules: &NationalIdRules, today: NaiveDate) -> Vec<FieldError> {
        self.check(rules, None, today).err().unwrap_or_default()
    }

    fn check(
        self,
        rules: &NationalIdRules,
        product: Option<&ProductVersion>,
        today: NaiveDate,
    ) -> Result<ValidRegistration, Vec<FieldError>> {
        self.check_at("", rules, product, today)
    }

    pub(crate) fn check_at(
        self,
        prefix: &str,
        rules: &NationalIdRules,
        product: Option<&ProductVersion>,
        today: NaiveDate,
    ) -> Result<ValidRegistration, Vec<FieldError>> {
        let p = |name: &str| format!("{prefix}/{name}");
        let mut errors = Vec::new();

        let member_number = match self.member_number.as_deref() {
            None => {
                errors.push(FieldError::required(p("member_number")));
                None
            }
            Some(raw) => MemberNumber::parse(raw).or_else(|| {
                errors.push(invalid_member_number(p("member_number"), raw));
                None
            }),
        };
        let start_date = match self.start_date.as_deref() {
            None => {
                errors.push(FieldError::required(p("start_date")));
                None
            }
            Some(raw) => optional_date(Some(raw), p("start_date"), &mut errors),
        };
        let paid_through = optional_date(self.paid_through.as_deref(), p("paid_through"), &mut errors);
        for (date, name) in [(start_date, "start_date"), (paid_through, "paid_through")] {
            errors.extend(date.and_then(|d| crate::dates::check(d, p(name), today)));
        }
        // Ages and births are judged on a start date within the business's years only: on one
        // refused already (`0000-01-01`), every member would be "born after" it.
        let judged_start = start_date.filter(|d| crate::dates::check(*d, String::new(), today).is_none());
        if let (Some(start), Some(paid)) = (start_date, paid_through) {
            if start.checked_sub_days(Days::new(1)).is_some_and(|eve| paid < eve) {
                errors.push(FieldError::new(
                    p("paid_through"),
                    "before_start_date",
                    "must not be earlier than the day before start_date",
                    "ne doit pas précéder la veille de start_date",
                ));
            }
        }

        let principal = if self.principal == BeneficiaryDraft::default() {
            errors.push(FieldError::required(p("principal")));
            None
        } else {
            match self.principal.validate_with(rules, &p("principal"), today) {
                Ok(b) => Some(b),
                Err(e) => {
                    errors.extend(e);
                    None
                }
            }
        };

        if let (Some(b), Some(start)) = (&principal, judged_start) {
            if crate::eligibility::born_after(b.birth_date, b.birth_date_precision, start) {
                errors.push(crate::eligibility::born_after_start(p("principal/birth_date"), start));
            }
        }

        let too_many = self.dependants.len() > MAX_DEPENDANTS;
        if too_many {
            errors.push(too_many_dependants(p("dependants")));
        }

        let mut member_numbers: HashSet<String> = member_number.iter().map(MemberNumber::key).collect();
        let mut national_ids: HashSet<NationalId> = principal.iter().filter_map(|b| b.national_id.clone()).collect();
        // Members checked so far, to find a person listed twice.
        let mut seen: Vec<(Option<NationalId>, LikelyMatch)> = principal
            .iter()
            .map(|b| (b.national_id.clone(), b.likely_match()))
            .collect();
        let mut facts = Vec::with_capacity(self.dependants.len());
        let mut dependants = Vec::with_capacity(self.dependants.len());
        for (i, d) in self.dependants.into_iter().enumerate() {
            let at = format!("{prefix}/dependants/{i}");
            let relationship = dependant_relationship(d.relationship.as_deref(), &at, &mut errors);
            let dependant_number = d.member_number.as_deref().and_then(|raw| {
                let number = MemberNumber::parse(raw).or_else(|| {
                    errors.push(invalid_member_number(format!("{at}/member_number"), raw));
                    None
                })?;
                if !member_numbers.insert(number.key()) {
                    errors.push(FieldError::new(
                        format!("{at}/member_number"),
                        "duplicate",
                        "another member of this registration has the same member number",
                        "un autre membre de cette inscription a le même numéro d'adhérent",
                    ));
                }
                Some(number)
            });
            let beneficiary = match d.beneficiary.validate_with(rules, &at, today) {
                Ok(b) => Some(b),
                Err(e) => {
                    errors.extend(e);
                    None
                }
            };
            if let Some(b) = &beneficiary {
                let likely = b.likely_match();
                if b.national_id
                    .as_ref()
                    .is_some_and(|id| !national_ids.insert(id.clone()))
                {
                    errors.push(duplicate_member(format!("{at}/national_id")));
                } else if seen.iter().any(|(other_id, other)| {
                    // Two different national ids are two people, whatever their names.
                    !(other_id.is_some() && b.national_id.is_some()) && other.matches(&likely)
                }) {
                    errors.push(duplicate_member(at.clone()));
                }
                seen.push((b.national_id.clone(), likely));
            }
            facts.push(match (relationship, &beneficiary) {
                (Some(relationship), Some(b)) => DependantFacts {
                    relationship,
                    birth_date: b.birth_date,
                    birth_date_precision: b.birth_date_precision,
                },
                // Stands in for a dependant whose own errors are already listed, so that the
                // household count and the indices stay right; a spouse has no age limit, and
                // one born at the dawn of the calendar is born by any start date.
                _ => DependantFacts {
                    relationship: Relationship::Spouse,
                    birth_date: NaiveDate::MIN,
                    birth_date_precision: BirthDatePrecision::Day,
                },
            });
            if let (Some(relationship), Some(beneficiary)) = (relationship, beneficiary) {
                dependants.push(ValidDependant {
                    relationship,
                    member_number: dependant_number,
                    beneficiary,
                });
            }
        }

        if let Some(product) = product {
            for e in household_errors(product, judged_start.unwrap_or(today), &facts) {
                let is_count = e.field == "/dependants";
                // Without a valid start date no age can be judged; the count still can.
                if (is_count && too_many) || (!is_count && judged_start.is_none()) {
                    continue;
                }
                errors.push(FieldError {
                    field: format!("{prefix}{}", e.field),
                    ..e
                });
            }
        }

        match (member_number, start_date, principal) {
            (Some(member_number), Some(start_date), Some(principal)) if errors.is_empty() => Ok(ValidRegistration {
                product: self.product,
                member_number,
                start_date,
                paid_through,
                principal,
                dependants,
            }),
            _ => Err(errors),
        }
    }

    /// Reads a registration body field by field: every wrong type (`invalid_type`) and unknown
    /// field (`unknown_field`) is reported at its pointer under `pointer_prefix`; missing fields
    /// are left to `validate`. A wrongly typed field comes back absent: combine both lists with
    /// `merge_errors` so it is not also called missing.
    pub fn from_json(value: &Value, pointer_prefix: &str) -> (RegistrationDraft, Vec<FieldError>) {
        let mut errors = Vec::new();
        let Some(object) = value.as_object() else {
            errors.push(type_error(pointer_prefix.to_owned(), "a JSON object", "un objet JSON"));
            return (RegistrationDraft::default(), errors);
        };
        let mut r = Reader::new(object, pointer_prefix, &mut errors);
        let product = r.str("product");
        let member_number = r.str("member_number");
        let start_date = r.str("start_date");
        let paid_through = r.str("paid_through");
        let principal = r
            .object("principal", |o| {
                let b = read_beneficiary(o);
                o.finish();
                b
            })
            .unwrap_or_default();
        // Past the bound, the list is one error, not one for each item of a body full of them.
        let crowded = r.len_of("dependants").is_some_and(|n| n > MAX_DEPENDANTS);
        if crowded {
            r.get("dependants");
            r.errors
                .push(too_many_dependants(format!("{pointer_prefix}/dependants")));
        }
        let dependants = (!crowded)
            .then(|| {
                r.objects("dependants", |o| {
                    let relationship = o.str("relationship");
                    let member_number = o.str("member_number");
                    let beneficiary = read_beneficiary(o);
                    o.finish();
                    DependantDraft {
                        relationship,
                        member_number,
                        beneficiary,
                    }
                })
            })
            .flatten()
            .unwrap_or_default();
        r.finish();
        let draft = RegistrationDraft {
            product,
            member_number,
            start_date,
            paid_through,
            principal,
            dependants,
        };
        (draft, errors)
    }
}

fn duplicate_member(pointer: String) -> FieldError {
    FieldError::new(
        pointer,
        "duplicate_member",
        "this person is already listed in this registration (same national id, or same names, sex and birth date)",
        "cette personne figure déjà dans cette inscription (même numéro d'identité nationale, ou mêmes noms, sexe et date de naissance)",
    )
}

/// Reading errors first; then the rule errors at pointers that reading did not already report
/// (at or under).
pub fn merge_errors(mut read_errors: Vec<FieldError>, rule_errors: Vec<FieldError>) -> Vec<FieldError> {
    let read_len = read_errors.len();
    for e in rule_errors {
        let covered = read_errors[..read_len].iter().any(|r| {
            e.field == r.field
                || e.field
                    .strip_prefix(r.field.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        });
        if !covered {
            read_errors.push(e);
        }
    }
    read_errors
}

fn type_error(field: String, expected_en: &str, expected_fr: &str) -> FieldError {
    FieldError::new(
        field,
        "invalid_type",
        format!("must be {expected_en}"),
        format!("doit être {expected_fr}"),
    )
}

fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// One JSON object read field by field.
struct Reader<'a, 'e> {
    object: &'a Map<String, Value>,
    prefix: String,
    known: Vec<&'static str>,
    errors: &'e mut Vec<FieldError>,
}

impl<'a, 'e> Reader<'a, 'e> {
    fn new(object: &'a Map<String, Value>, prefix: &str, errors: &'e mut Vec<FieldError>) -> Self {
        Reader {
            object,
            prefix: prefix.to_owned(),
            known: Vec::new(),
            errors,
        }
    }

    fn pointer(&self, name: &str) -> String {
        format!("{}/{}", self.prefix, escape(name))
    }

    /// `null` reads as absent.
    fn get(&mut self, name: &'static str) -> Option<&'a Value> {
        self.known.push(name);
        self.object.get(name).filter(|v| !v.is_null())
    }

    fn str(&mut self, name: &'static str) -> Option<String> {
        match self.get(name)? {
            Value::String(s) => Some(s.clone()),
            _ => {
                let p = self.pointer(name);
                self.errors.push(type_error(p, "a string", "une chaîne de caractères"));
                None
            }
        }
    }

    fn object<T>(&mut self, name: &'static str, read: impl FnOnce(&mut Reader<'a, '_>) -> T) -> Option<T> {
        match self.get(name)? {
            Value::Object(o) => {
                let p = self.pointer(name);
                let mut nested = Reader::new(o, &p, self.errors);
                Some(read(&mut nested))
            }
            _ => {
                let p = self.pointer(name);
                self.errors.push(type_error(p, "an object", "un objet"));
                None
            }
        }
    }

    fn objects<T: Default>(
        &mut self,
        name: &'static str,
        mut read: impl FnMut(&mut Reader<'a, '_>) -> T,
    ) -> Option<Vec<T>> {
        let base = self.pointer(name);
        match self.get(name)? {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{base}/{i}");
                    match item {
                        Value::Object(o) => {
                            let mut nested = Reader::new(o, &p, self.errors);
                            out.push(read(&mut nested));
                        }
                        _ => {
                            self.errors.push(type_error(p, "an object", "un objet"));
                            // Keeps the indices of the items after it.
                            out.push(T::default());
                        }
                    }
                }
                Some(out)
            }
            _ => {
                self.errors.push(type_error(base, "an array", "un tableau"));
                None
            }
        }
    }

    /// The length of an array member, without reading it.
    fn len_of(&self, name: &str) -> Option<usize> {
        self.object.get(name).and_then(Value::as_array).map(Vec::len)
    }

    /// Reports every member that is not a known field, in name order.
    fn finish(&mut self) {
        let mut unknown: Vec<&String> = self
            .object
            .keys()
            .filter(|k| !self.known.contains(&k.as_str()))
            .collect();
        unknown.sort();
        let errors = FieldError::unknown_fields(&self.prefix, &unknown, |name| self.pointer(name));
        self.errors.extend(errors);
    }
}

fn read_beneficiary(o: &mut Reader<'_, '_>) -> BeneficiaryDraft {
    let national_id = o.object("national_id", |n| {
        let id = NationalIdDraft {
            country: n.str("country"),
            id_type: n.str("type"),
            value: n.str("value"),
        };
        n.finish();
        id
    });
    let family_name = o.str("family_name");
    let given_names = o.str("given_names");
    let sex = o.str("sex");
    let birth_date = o.str("birth_date");
    let birth_date_precision = o.str("birth_date_precision");
    let phone = o.str("phone");
    let locality = o.object("locality", |l| {
        let locality = LocalityDraft {
            region: l.str("region"),
            district: l.str("district"),
            commune: l.str("commune"),
        };
        l.finish();
        locality
    });
    BeneficiaryDraft {
        national_id,
        family_name,
        given_names,
        sex,
        birth_date,
        birth_date_precision,
        phone,
        locality,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_number_a_spreadsheet_made_a_month_or_a_float_is_named() {
        for raw in ["mai-26", "nov.-26", "May-26", "juil.-26"] {
            assert_eq!(MemberNumber::parse(raw), None, "{raw}");
            assert!(
                member_number_hint(raw).is_some_and(|(en, _)| en.contains("date")),
                "{raw}"
            );
        }
        assert!(member_number_hint("1,00E+11").is_some_and(|(en, _)| en.contains("scientific")));
        for fine in [
            "TSV-0042",
            "5/2026",
            "M-26",
            "NOV-2026-1",
            "MAR-26",
            "mar-26",
            "OCT-12",
            "JAN-05",
        ] {
            assert!(MemberNumber::parse(fine).is_some(), "{fine}");
        }
    }

    #[test]
    fn only_the_spelling_a_spreadsheet_writes_is_taken_for_a_month() {
        // Every case spelling of each month name: the spreadsheet's is refused, the others are
        // numbers like any (compared ignoring case, so registered `JAN-26` is also `Jan-26`).
        fn spellings(name: &str) -> Vec<String> {
            let letters: Vec<char> = name.chars().collect();
            (0..1u32 << letters.len())
                .map(|mask| {
                    letters
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            if mask & (1 << i) != 0 {
                                c.to_ascii_uppercase()
                            } else {
                                c.to_ascii_lowercase()
                            }
                        })
                        .collect()
                })
                .collect::<HashSet<String>>()
                .into_iter()
                .collect()
        }
        for month in [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "janv.", "mars",
            "avr.", "mai", "juin", "juil.", "sept.", "oct.", "nov.",
        ] {
            for spelling in spellings(month) {
                let raw = format!("{spelling}-26");
                let as_written = spelling == month;
                assert_eq!(MemberNumber::parse(&raw).is_none(), as_written, "{raw}");
                assert_eq!(member_number_hint(&raw).is_some(), as_written, "{raw}");
            }
        }
        // Three digits of year, or one, are not a month shown.
        for fine in ["Jan-2026", "Jan-6", "Jan26", "Jan-26-1"] {
            assert!(MemberNumber::parse(fine).is_some(), "{fine}");
        }
        // Those with accents are refused for their characters, and still named a date.
        for raw in ["févr.-26", "août-26", "déc.-26"] {
            assert_eq!(MemberNumber::parse(raw), None, "{raw}");
            assert!(
                member_number_hint(raw).is_some_and(|(en, _)| en.contains("date")),
                "{raw}"
            );
        }
        assert!(member_number_hint("FÉVR.-26").is_none());
    }

    use crate::product::Layer;

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    fn today() -> NaiveDate {
        d("2026-03-15")
    }

    fn product(max_dependants: Option<u32>, child_max_age: Option<u32>) -> ProductVersion {
        ProductVersion {
            product_id: "prod-tsevie".into(),
            organization: "mut-tsevie".into(),
            layer: Layer::Complementary,
            name: "Complémentaire Tsévié".into(),
            rules: vec![],
            annual_ceiling_xof: None,
            waiting_period_days: 0,
            grace_period_days: 0,
            excluded_categories: vec![],
            max_dependants,
            child_max_age,
            effective_from: d("2024-01-01"),
            version: 1,
        }
    }

    fn person(family: &str, given: &str, sex: &str, birth: &str) -> BeneficiaryDraft {
        BeneficiaryDraft {
            family_name: Some(family.into()),
            given_names: Some(given.into()),
            sex: Some(sex.into()),
            birth_date: Some(birth.into()),
            ..Default::default()
        }
    }

    fn dependant(relationship: &str, b: BeneficiaryDraft) -> DependantDraft {
        DependantDraft {
            relationship: Some(relationship.into()),
            member_number: None,
            beneficiary: b,
        }
    }

    fn household() -> RegistrationDraft {
        RegistrationDraft {
            product: Some("prod-tsevie".into()),
            member_number: Some("TSV-0042".into()),
            start_date: Some("2026-01-01".into()),
            paid_through: Some("2026-12-31".into()),
            principal: person("Mensah", "Kofi", "M", "1980-04-12"),
            dependants: vec![
                dependant("spouse", person("Mensah", "Afi Délali", "F", "1984")),
                dependant("child", person("Mensah", "Yao", "M", "2015-09-30")),
            ],
        }
    }

    fn codes(errors: &[FieldError]) -> Vec<(&str, &str)> {
        errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect()
    }

    #[test]
    fn member_numbers_follow_the_rule() {
        assert_eq!(MemberNumber::parse(" TSV-0042/2.a ").unwrap().as_str(), "TSV-0042/2.a");
        assert!(MemberNumber::parse(&"9".repeat(50)).is_some());
        for bad in ["", "  ", "TSV 0042", "TSV_0042", "Sé-1", &"9".repeat(51)] {
            assert_eq!(MemberNumber::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_valid_household() {
        let r = household().validate(&product(Some(4), Some(18)), today()).unwrap();
        assert_eq!(r.member_number.as_str(), "TSV-0042");
        assert_eq!(r.start_date, d("2026-01-01"));
        assert_eq!(r.paid_through, Some(d("2026-12-31")));
        assert_eq!(r.principal.given_names, "Kofi");
        assert_eq!(r.dependants.len(), 2);
        assert_eq!(r.dependants[0].relationship, Relationship::Spouse);
        assert_eq!(
            r.dependants[0].beneficiary.birth_date_precision,
            BirthDatePrecision::Year
        );
        assert_eq!(r.dependants[0].beneficiary.given_names, "Afi Délali");
        assert_eq!(r.dependants[1].relationship, Relationship::Child);
    }

    #[test]
    fn every_error_is_listed_at_once_with_its_pointer() {
        let mut draft = household();
        draft.member_number = Some("TSV 42".into());
        draft.start_date = Some("2026-02-30".into());
        draft.paid_through = Some("soon".into());
        draft.principal.family_name = None;
        draft.principal.phone = Some("90123456".into());
        draft.dependants[0].relationship = Some("principal".into());
        draft.dependants[1].beneficiary.birth_date = Some("2090-01-01".into());
        draft.dependants[1].member_number = Some("bad number".into());
        draft
            .dependants
            .push(dependant("cousin", person("Mensah", "Ama", "X", "2010")));
        let errors = draft.validate(&product(None, None), today()).unwrap_err();
        assert_eq!(
            codes(&errors),
            [
                ("/member_number", "invalid_format"),
                ("/start_date", "invalid_date"),
                ("/paid_through", "invalid_date"),
                ("/principal/family_name", "required"),
                ("/principal/phone", "invalid_phone"),
                ("/dependants/0/relationship", "unknown_value"),
                ("/dependants/1/member_number", "invalid_format"),
                ("/dependants/1/birth_date", "birth_date_in_future"),
                ("/dependants/2/relationship", "unknown_value"),
                ("/dependants/2/sex", "unknown_value"),
            ]
        );
        assert!(errors.iter().all(|e| !e.en.is_empty() && !e.fr.is_empty()));

        let errors = RegistrationDraft::default()
            .validate(&product(None, None), today())
            .unwrap_err();
        assert_eq!(
            codes(&errors),
            [
                ("/member_number", "required"),
                ("/start_date", "required"),
                ("/principal", "required")
            ]
        );
    }

    #[test]
    fn paid_through_may_end_the_day_before_the_start() {
        let with = |paid: &str| {
            let mut draft = household();
            draft.paid_through = Some(paid.into());
            draft
                .validate(&product(None, None), today())
                .map(|_| ())
                .map_err(|e| codes(&e)[0].1.to_owned())
        };
        assert_eq!(with("2025-12-31"), Ok(()));
        assert_eq!(with("2025-12-30"), Err("before_start_date".into()));
        let mut draft = household();
        draft.paid_through = None;
        assert_eq!(
            draft.validate(&product(None, None), today()).unwrap().paid_through,
            None
        );
    }

    #[test]
    fn a_person_listed_twice_is_a_duplicate_member() {
        // The principal again, spelt without accents and in capitals.
        let mut draft = household();
        draft
            .dependants
            .push(dependant("other", person("MENSAH", "kofi", "M", "1980-04-12")));
        // The same national id twice.
        let with_id = |mut b: BeneficiaryDraft| {
            b.national_id = Some(NationalIdDraft {
                country: Some("TG".into()),
                id_type: Some("NIU".into()),
                value: Some("1234 5678 9012".into()),
            });
            b
        };
        draft.dependants[1].beneficiary = with_id(draft.dependants[1].beneficiary.clone());
        draft
            .dependants
            .push(dependant("child", with_id(person("Mensah", "Komi", "M", "2017"))));
        // The year-only spouse again, with a full birth date in that year.
        draft
            .dependants
            .push(dependant("spouse", person("Mensah", "Afi-Delali", "F", "1984-07-01")));
        // Twins with different names are two people.
        draft
            .dependants
            .push(dependant("child", person("Mensah", "Yawa", "F", "2015-09-30")));
        let errors = draft.validate(&product(None, None), today()).unwrap_err();
        assert_eq!(
            codes(&errors),
            [
                ("/dependants/2", "duplicate_member"),
                ("/dependants/3/national_id", "duplicate_member"),
                ("/dependants/4", "duplicate_member"),
            ]
        );
    }

    #[test]
    fn dependant_member_numbers_are_unique_in_the_request() {
        let mut draft = household();
        draft.dependants[0].member_number = Some("TSV-0042-1".into());
        // Another case is the same number.
        draft.dependants[1].member_number = Some("tsv-0042-1".into());
        draft.dependants.push(DependantDraft {
            member_number: Some("Tsv-0042".into()),
            ..dependant("parent", person("Mensah", "Kodjo", "M", "1950"))
        });
        let errors = draft.validate(&product(None, None), today()).unwrap_err();
        assert_eq!(
            codes(&errors),
            [
                ("/dependants/1/member_number", "duplicate"),
                ("/dependants/2/member_number", "duplicate")
            ]
        );
    }

    #[test]
    fn household_rules_of_the_product() {
        // Yao turns 11 in September 2026: 10 on the start date.
        let errors = household().validate(&product(Some(1), Some(9)), today()).unwrap_err();
        assert_eq!(
            codes(&errors),
            [
                ("/dependants", "too_many_dependants"),
                ("/dependants/1/birth_date", "dependant_age_limit")
            ]
        );
        assert!(household().validate(&product(Some(2), Some(10)), today()).is_ok());
        // The age counts on the start date, not today.
        let mut draft = household();
        draft.start_date = Some("2025-09-29".into());
        draft.paid_through = None;
        assert!(draft.validate(&product(None, Some(9)), today()).is_ok());
        // A year-only child counts from 1 January.
        let mut draft = household();
        draft.dependants[1].beneficiary.birth_date = Some("2015".into());
        let errors = draft.validate(&product(None, Some(10)), today()).unwrap_err();
        assert_eq!(codes(&errors), [("/dependants/1/birth_date", "dependant_age_limit")]);
        // An invalid dependant before the child keeps the child's index.
        let mut draft = household();
        draft.dependants[0].relationship = None;
        let errors = draft.validate(&product(Some(1), Some(9)), today()).unwrap_err();
        assert_eq!(
            codes(&errors),
            [
                ("/dependants/0/relationship", "required"),
                ("/dependants", "too_many_dependants"),
                ("/dependants/1/birth_date", "dependant_age_limit"),
            ]
        );
    }

    #[test]
    fn at_most_a_hundred_dependants() {
        let mut draft = household();
        draft.dependants = (0..101)
            .map(|i| dependant("child", person("Mensah", &format!("Enfant {i}"), "F", "2020")))
            .collect();
        let errors = draft.clone().validate(&product(Some(5), None), today()).unwrap_err();
        assert_eq!(codes(&errors), [("/dependants", "too_many_dependants")]);
        assert!(errors[0].en.contains("100"));
        draft.dependants.pop();
        assert!(draft.validate(&product(None, None), today()).is_ok());
    }

    #[test]
    fn without_the_product_the_other_rules_still_apply() {
        let mut draft = household();
        draft.principal.sex = Some("f".into());
        let errors = draft.errors_without_product(&NationalIdRules::SHIPPED, today());
        assert_eq!(codes(&errors), [("/principal/sex", "unknown_value")]);
        assert!(household()
            .errors_without_product(&NationalIdRules::SHIPPED, today())
            .is_empty());
    }

    #[test]
    fn json_bodies_are_read_field_by_field() {
        let body = json!({
            "product": "prod-tsevie",
            "member_number": "TSV-0042",
            "start_date": "2026-01-01",
            "paid_through": null,
            "principal": {
                "national_id": {"country": "tg", "type": "niu", "value": "1234-5678-9012"},
                "family_name": "Mensah", "given_names": "Kofi", "sex": "M", "birth_date": "1980-04-12",
                "phone": "+22890123456",
                "locality": {"region": "Maritime", "district": "Zio", "commune": "Tsévié"}
            },
            "dependants": [
                {"relationship": "child", "member_number": "TSV-0042-1", "family_name": "Mensah",
                 "given_names": "Ama", "sex": "F", "birth_date": "2019-01-01", "birth_date_precision": "year"}
            ]
        });
        let (draft, errors) = RegistrationDraft::from_json(&body, "");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(draft.product.as_deref(), Some("prod-tsevie"));
        assert_eq!(draft.paid_through, None);
        let r = draft.validate(&product(None, None), today()).unwrap();
        assert_eq!(r.principal.national_id.unwrap().to_compact(), "TG:NIU:123456789012");
        assert_eq!(r.principal.locality.unwrap().commune, "Tsévié");
        assert_eq!(r.dependants[0].member_number.as_ref().unwrap().as_str(), "TSV-0042-1");
        assert_eq!(
            r.dependants[0].beneficiary.birth_date_precision,
            BirthDatePrecision::Year
        );
    }

    #[test]
    fn wrong_types_and_unknown_fields_are_reported_once() {
        let body = json!({
            "member_number": 42,
            "start_date": "2026-01-01",
            "principal": {
                "family_name": ["Mensah"], "given_names": "Kofi", "sex": "M", "birth_date": "1980-04-12",
                "national_id": "TG:NIU:123456789012", "nickname": "Ko",
                "locality": {"region": "Maritime", "district": "Zio", "commune": "Tsévié", "canton": "x"}
            },
            "dependants": [
                "Ama",
                {"relationship": "child", "family_name": "Mensah", "given_names": "Yao", "sex": "M",
                 "birth_date": "2015-09-30", "a/b": 1}
            ],
            "extra": true
        });
        let (draft, read) = RegistrationDraft::from_json(&body, "");
        assert_eq!(
            codes(&read),
            [
                ("/member_number", "invalid_type"),
                ("/principal/national_id", "invalid_type"),
                ("/principal/family_name", "invalid_type"),
                ("/principal/locality/canton", "unknown_field"),
                ("/principal/nickname", "unknown_field"),
                ("/dependants/0", "invalid_type"),
                ("/dependants/1/a~1b", "unknown_field"),
                ("/extra", "unknown_field"),
            ]
        );
        assert_eq!(draft.dependants.len(), 2);
        let rules = draft.validate(&product(None, None), today()).unwrap_err();
        let all = merge_errors(read.clone(), rules);
        assert_eq!(all.len(), read.len(), "{all:?}");

        let (_, read) = RegistrationDraft::from_json(&json!([1]), "");
        assert_eq!(codes(&read), [("", "invalid_type")]);
        let (_, read) = RegistrationDraft::from_json(&json!({"dependants": {}}), "");
        assert_eq!(codes(&read), [("/dependants", "invalid_type")]);
    }

    #[test]
    fn a_crowded_list_of_dependants_is_one_error() {
        let body = json!({"dependants": vec![json!(0); 5000]});
        let (draft, read) = RegistrationDraft::from_json(&body, "");
        assert_eq!(codes(&read), [("/dependants", "too_many_dependants")]);
        assert!(draft.dependants.is_empty());
        let body = json!({"dependants": vec![json!(0); MAX_DEPENDANTS]});
        let (_, read) = RegistrationDraft::from_json(&body, "/x");
        assert_eq!(read.len(), MAX_DEPENDANTS);
        assert_eq!(read[0].field, "/x/dependants/0");
    }

    /// Stored and answered as first written (API.md §5 Registrations), case included.
    #[test]
    fn a_member_number_is_given_back_as_written() {
        let number = MemberNumber::parse(" Tsv-0042/2 ").unwrap();
        assert_eq!(number.to_string(), "Tsv-0042/2");
        assert_eq!(format!("<{number}>"), "<Tsv-0042/2>");
        assert_eq!(number.into_string(), "Tsv-0042/2");
    }

    /// Without a valid start date no age can be judged, but the household's size still can.
    #[test]
    fn without_a_start_date_the_count_is_judged_and_ages_are_not() {
        let mut draft = household();
        draft.start_date = Some("2026-02-30".into());
        // Yao, born 2015-09-30, is 10 today (2026-03-15): past a limit of 9 whatever the start.
        let errors = draft.validate(&product(Some(1), Some(9)), today()).unwrap_err();
        assert_eq!(
            codes(&errors),
            [("/start_date", "invalid_date"), ("/dependants", "too_many_dependants")]
        );
    }

    /// One of the two with a national id and the other without: the same names, sex and birth
    /// date are the same person listed twice.
    #[test]
    fn a_member_without_a_national_id_matching_one_with_it_is_a_duplicate() {
        let mut draft = household();
        draft.principal.national_id = Some(NationalIdDraft {
            country: Some("TG".into()),
            id_type: Some("NIU".into()),
            value: Some("1234 5678 9012".into()),
        });
        draft
            .dependants
            .push(dependant("other", person("Mensah", "Kofi", "M", "1980-04-12")));
        let errors = draft.validate(&product(None, None), today()).unwrap_err();
        assert_eq!(codes(&errors), [("/dependants/2", "duplicate_member")]);
    }

    /// Rule errors are kept unless reading reported their pointer, or one above it.
    #[test]
    fn merged_errors_drop_only_those_at_or_under_a_read_error() {
        let read = vec![
            FieldError::new("/member_number", "invalid_type", "en", "fr"),
            FieldError::new("/dependants/1", "invalid_type", "en", "fr"),
        ];
        let rules = vec![
            FieldError::required("/member_number"),
            FieldError::required("/start_date"),
            FieldError::required("/dependants/1/sex"),
            FieldError::required("/dependants/10/sex"),
        ];
        let all = merge_errors(read, rules);
        assert_eq!(
            codes(&all),
            [
                ("/member_number", "invalid_type"),
                ("/dependants/1", "invalid_type"),
                ("/start_date", "required"),
                ("/dependants/10/sex", "required"),
            ]
        );
    }

    #[test]
    fn a_dependant_joins_a_registered_household() {
        let household = HouseholdSpan {
            start_date: d("2026-01-01"),
            end_date: Some(d("2026-12-31")),
        };
        let added = |relationship: &str, start: Option<&str>, b: BeneficiaryDraft| AddedDependantDraft {
            dependant: dependant(relationship, b),
            start_date: start.map(str::to_owned),
        };
        let newborn = person("Mensah", "Ama", "F", "2026-03-01");
        let (valid, start) = added("child", Some("2026-03-01"), newborn.clone())
            .validate_with(
                &NationalIdRules::SHIPPED,
                &product(Some(1), Some(21)),
                household,
                today(),
            )
            .unwrap();
        assert_eq!((valid.relationship, start), (Relationship::Child, d("2026-03-01")));
        assert_eq!(valid.beneficiary.given_names, "Ama");

        // Pointers are the body's own; every problem at once.
        let mut nameless = newborn.clone();
        nameless.family_name = None;
        let errors = added("principal", None, nameless)
            .validate_with(&NationalIdRules::SHIPPED, &product(None, None), household, today())
            .unwrap_err();
        assert_eq!(
            codes(&errors),
            [
                ("/start_date", "required"),
                ("/relationship", "unknown_value"),
                ("/family_name", "required")
            ]
        );
        for (start, code) in [
            ("2025-12-31", "before_household_start"),
            ("2027-01-01", "after_household_end"),
            ("2099-01-01", "out_of_range"),
            ("2026-02-30", "invalid_date"),
        ] {
            let errors = added("spouse", Some(start), person("Mensah", "Afi", "F", "1984"))
                .validate_with(&NationalIdRules::SHIPPED, &product(None, None), household, today())
                .unwrap_err();
            assert_eq!(codes(&errors), [("/start_date", code)], "{start}");
        }
        // The household's own first and last days are within it.
        for start in ["2026-01-01", "2026-12-31"] {
            let (_, on) = added("spouse", Some(start), person("Mensah", "Afi", "F", "1984"))
                .validate_with(&NationalIdRules::SHIPPED, &product(None, None), household, today())
                .unwrap();
            assert_eq!(on, d(start));
        }
        // The age limit holds on the dependant's own start date.
        let errors = added("child", Some("2026-10-01"), person("Mensah", "Yao", "M", "2005-09-30"))
            .validate_with(&NationalIdRules::SHIPPED, &product(None, Some(20)), household, today())
            .unwrap_err();
        assert_eq!(codes(&errors), [("/birth_date", "dependant_age_limit")]);
        assert!(
            added("child", Some("2026-09-01"), person("Mensah", "Yao", "M", "2005-09-30"))
                .validate_with(&NationalIdRules::SHIPPED, &product(None, Some(20)), household, today())
                .is_ok()
        );
    }
}
