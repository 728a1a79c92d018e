//! Reading a FHIR request into the `/v1` form of the same request, so that both forms are
//! judged by the same rules. Each `/v1` field written remembers the element it came from, and
//! the errors of the `/v1` rules are reported at that element.

use std::collections::HashMap;

use passerelle_domain::error::FieldError;
use serde_json::{json, Map, Value};

use super::model::{MEMBER_NUMBER_PREFIX, NATIONAL_ID_PREFIX};
use super::outcome::MAX_ISSUES;

/// A `/v1` body being written from a FHIR resource.
pub struct Translation {
    resource: &'static str,
    pub body: Map<String, Value>,
    /// `/v1` JSON Pointer → FHIRPath, longest pointer first when looked up.
    places: Vec<(String, String)>,
    /// A `/v1` pointer and a rule's code → the FHIRPath of that fault, before `places`.
    by_code: Vec<(&'static str, &'static str, String)>,
    /// The first [`MAX_ISSUES`] faults found in the resource itself.
    errors: Vec<FieldError>,
    /// How many more were found: counted, not kept, so that a resource with thousands of faults
    /// costs no more than one with a hundred.
    unlisted: usize,
    /// This server's `<public base>/fhir/r4/`, under which an absolute reference names the same
    /// resource as a relative one (R4 references.html); empty when no base is known.
    base: String,
}

fn wrong(at: &str, code: &str, en: impl Into<String>, fr: impl Into<String>) -> FieldError {
    FieldError::new(at, code, en, fr)
}

/// A FHIR decimal (`Money.value`, `Quantity.value`) that holds a whole number: `10000` or
/// `10000.0`, as `/v1` reads them ([`crate::fields::whole_number`]). Fractions are `None`.
pub fn whole(value: &Value) -> Option<i64> {
    value.as_number().and_then(crate::fields::whole_number)
}

/// The FHIR base under a server's public base (`https://passerelle.example.org/fhir/r4/`), empty
/// when the public base is.
pub fn fhir_base(public_base: &str) -> String {
    if public_base.is_empty() {
        String::new()
    } else {
        format!("{}/fhir/r4/", public_base.trim_end_matches('/'))
    }
}

/// A reference as a relative one: an absolute reference under `fhir_base` (this server's, by
/// [`fhir_base`]) loses it, its scheme and host read in any case (R4 references.html: the two
/// name the same resource); any other reference is as given.
pub fn relative<'r>(fhir_base: &str, reference: &'r str) -> &'r str {
    match reference.get(..fhir_base.len()) {
        Some(head) if !fhir_base.is_empty() && head.eq_ignore_ascii_case(fhir_base) => &reference[fhir_base.len()..],
        _ => reference,
    }
}

/// Whether two FHIRPaths name the same element, or one is inside the other: a fault already
/// reported there needs no second report.
fn related(a: &str, b: &str) -> bool {
    // The resource itself (a fault with no better place) hides no fault of its elements.
    let inside =
        |x: &str, y: &str| y.contains(['.', '[']) && x.strip_prefix(y).is_some_and(|rest| rest.starts_with(['.', '[']));
    a == b || inside(a, b) || inside(b, a)
}

impl Translation {
    /// A coded element that, when given, must hold one value: FHIR's `use`, `status` and the
    /// like.
    pub fn fixed(&mut self, body: &Map<String, Value>, element: &str, allowed: &str, why_en: &str, why_fr: &str) {
        if let Some(v) = body.get(element).filter(|v| !v.is_null()) {
            if v.as_str() != Some(allowed) {
                self.error(
                    element,
                    "unknown_value",
                    format!("must be {allowed}: {why_en}"),
                    format!("doit être {allowed} : {why_fr}"),
                );
            }
        }
    }

    pub fn new(resource: &'static str, source: &Map<String, Value>) -> Translation {
        let mut t = Translation {
            resource,
            body: Map::new(),
            places: Vec::new(),
            by_code: Vec::new(),
            errors: Vec::new(),
            unlisted: 0,
            base: String::new(),
        };
        // Absent, mistyped and another resource's name are three faults, told apart as the
        // `/v1` fields' are.
        let mut path = resource.to_owned();
        t.refuse_modifiers(source, &mut path, false);
        let at = t.at("resourceType");
        match source.get("resourceType") {
            Some(Value::String(r)) if r == resource => {}
            None | Some(Value::Null) => t.push(FieldError::required(at)),
            Some(Value::String(r)) if r.trim().is_empty() => t.push(FieldError::required(at)),
            Some(Value::String(_)) => t.push(wrong(
                &at,
                "unknown_value",
                format!("must be {resource}"),
                format!("doit être {resource}"),
            )),
            Some(_) => t.push(wrong(
                &at,
                "invalid_type",
                format!("must be the text {resource}"),
                format!("doit être le texte {resource}"),
            )),
        }
        t
    }

    /// Reads absolute references under `public_base` (`https://passerelle.example.org`) as the
    /// relative ones they are equal to: `<public_base>/fhir/r4/Patient/<id>` is `Patient/<id>`.
    pub fn on_base(mut self, public_base: &str) -> Translation {
        self.base = fhir_base(public_base);
        self
    }

    pub fn local<'r>(&self, reference: &'r str) -> &'r str {
        relative(&self.base, reference)
    }

    /// How a reference's fault is told: the relative form, and the absolute one when the base is
    /// known (`or` is the language's word for it).
    pub fn reference_form(&self, relative: &str, or: &str) -> String {
        if self.base.is_empty() {
            relative.to_owned()
        } else {
            format!("{relative} ({or} {}{relative})", self.base)
        }
    }

    /// R4 forbids processing a resource that holds a modifier the server does not understand:
    /// a `modifierExtension` (anywhere), `implicitRules` of the resource, and the `comparator`
    /// of a `quantity` the façade reads (`>= 3` units is not 3 units). Each is refused at its
    /// element, so that nothing is priced as if it were not there. Ordinary extensions, and what
    /// they hold, stay ignored; a null is absent, as everywhere in a body.
    ///
    /// One path buffer, extended and cut back as the walk goes, and scalars skipped: a path is
    /// copied only for a modifier found, so a 1 MiB body costs one pass over it, whatever the
    /// length of its member names.
    fn refuse_modifiers(&mut self, members: &Map<String, Value>, path: &mut String, in_extension: bool) {
        let depth = path.len();
        for (name, inner) in members {
            if inner.is_null() {
                continue;
            }
            let modifier = match name.as_str() {
                "modifierExtension" => inner.as_array().is_none_or(|a| !a.is_empty()),
                "implicitRules" => depth == self.resource.len(),
                "comparator" => !in_extension && path.ends_with(".quantity"),
                _ => false,
            };
            if !modifier && !inner.is_object() && !inner.is_array() {
                continue;
            }
            path.push('.');
            path.push_str(name);
            if modifier {
                let at = path.clone();
                self.push(wrong(
                    &at,
                    "unsupported_modifier",
                    "is a modifier this service does not understand: the resource cannot be processed with it",
                    "est un modificateur que ce service ne comprend pas : la ressource ne peut pas être traitée tant qu'il est présent",
                ));
            } else {
                let in_extension = in_extension || name == "extension";
                self.refuse_modifiers_within(inner, path, in_extension);
            }
            path.truncate(depth);
        }
    }

    /// [`Translation::refuse_modifiers`] inside a member's value: an object, or each object of
    /// an array (at any depth).
    fn refuse_modifiers_within(&mut self, value: &Value, path: &mut String, in_extension: bool) {
        match value {
            Value::Object(members) => self.refuse_modifiers(members, path, in_extension),
            Value::Array(items) => {
                let depth = path.len();
                for (i, inner) in items.iter().enumerate() {
                    if !inner.is_object() && !inner.is_array() {
                        continue;
                    }
                    use std::fmt::Write;
                    let _ = write!(path, "[{i}]");
                    self.refuse_modifiers_within(inner, path, in_extension);
                    path.truncate(depth);
                }
            }
            _ => {}
        }
    }

    fn push(&mut self, error: FieldError) {
        if self.errors.len() < MAX_ISSUES {
            self.errors.push(error);
        } else {
            self.unlisted += 1;
        }
    }

    /// Whether a fault of the resource itself was found.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// At most [`MAX_ISSUES`] faults, then one saying how many more were found (`more`, at
    /// least, beyond those in `all`).
    fn bounded(&self, mut all: Vec<FieldError>, more: usize) -> Vec<FieldError> {
        let beyond = all.len().saturating_sub(MAX_ISSUES);
        if beyond + more > 0 {
            all.truncate(MAX_ISSUES);
            all.push(FieldError::too_many(self.resource, beyond + more, more > 0));
        }
        all
    }

    /// The FHIRPath of an element of the resource.
    pub fn at(&self, element: &str) -> String {
        format!("{}.{element}", self.resource)
    }

    /// Writes `value` at `pointer` of the `/v1` body (objects created on the way; an array is
    /// written whole, its members' elements named with [`Translation::place`]), from `element`.
    pub fn put(&mut self, pointer: &str, value: Value, element: &str) {
        let at = self.at(element);
        self.places.push((pointer.to_owned(), at));
        let mut target = &mut self.body;
        let names: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
        let Some((last, path)) = names.split_last() else { return };
        for name in path {
            let next = target
                .entry((*name).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !next.is_object() {
                *next = Value::Object(Map::new());
            }
            let Value::Object(next) = next else { return };
            target = next;
        }
        target.insert((*last).to_owned(), value);
    }

    /// Remembers that errors under `pointer` belong to `element`, without writing anything.
    pub fn place(&mut self, pointer: &str, element: &str) {
        let at = self.at(element);
        self.places.push((pointer.to_owned(), at));
    }

    pub fn error(&mut self, element: &str, code: &str, en: impl Into<String>, fr: impl Into<String>) {
        if self.errors.len() >= MAX_ISSUES {
            self.unlisted += 1;
            return;
        }
        let at = self.at(element);
        self.push(wrong(&at, code, en, fr));
    }

    pub fn required(&mut self, element: &str) {
        if self.errors.len() >= MAX_ISSUES {
            self.unlisted += 1;
            return;
        }
        let at = self.at(element);
        self.push(FieldError::required(at));
    }

    /// The `/v1` rules' errors, each at the element its field came from (the resource itself
    /// when none matches).
    fn relocate(&self, errors: Vec<FieldError>) -> Vec<FieldError> {
        // The pointer placed last wins, as it names the element more precisely.
        let places: HashMap<&str, &str> = self.places.iter().map(|(p, at)| (p.as_str(), at.as_str())).collect();
        errors
            .into_iter()
            .map(|mut e| {
                // The longest pointer placed that is the field or holds it.
                let mut pointer = e.field.as_str();
                let place = loop {
                    if let Some(at) = places.get(pointer) {
                        break Some(*at);
                    }
                    match pointer.rfind('/') {
                        Some(end) if end > 0 => pointer = &pointer[..end],
                        _ => break None,
                    }
                };
                let by_code = self
                    .by_code
                    .iter()
                    .find(|(pointer, code, _)| e.code == *code && e.field.starts_with(pointer))
                    .map(|(_, _, at)| at.as_str());
                e.field = by_code.or(place).unwrap_or(self.resource).to_owned();
                e
            })
            .collect()
    }

    /// Faults found with the store's facts, named by `/v1` fields: each at its element, at
    /// most [`MAX_ISSUES`] of them.
    pub fn located(&self, errors: Vec<FieldError>) -> Vec<FieldError> {
        self.bounded(self.relocate(errors), 0)
    }

    /// What the `/v1` reader made of the translated body: its result when neither it nor the
    /// translation found a fault, else every fault at its FHIR element.
    pub fn judge<T>(&self, read: Result<T, Vec<FieldError>>) -> Result<T, crate::problem::ApiError> {
        match read {
            Ok(value) if self.errors.is_empty() => Ok(value),
            Ok(_) => Err(crate::problem::ApiError::validation(
                self.bounded(self.errors.clone(), self.unlisted),
            )),
            Err(errors) => Err(crate::problem::ApiError::validation(self.with_rule_errors(errors))),
        }
    }

    /// This translation's own errors, then the `/v1` rules' errors each at its element, except
    /// those at an element already reported; at most [`MAX_ISSUES`], then how many more. When
    /// the translation alone found more than that, the rules' errors are left for a later
    /// attempt: the last issue says how many more there are at least.
    fn with_rule_errors(&self, errors: Vec<FieldError>) -> Vec<FieldError> {
        let mut all = self.errors.clone();
        if self.unlisted == 0 {
            let moved = self.relocate(errors);
            all.extend(
                moved
                    .into_iter()
                    .filter(|e| !self.errors.iter().any(|x| related(&x.field, &e.field))),
            );
        }
        self.bounded(all, self.unlisted)
    }

    /// Reads the person a reference names into `/v1`'s `beneficiary` selector: `Patient/<id>`,
    /// or an identifier whose system is a national id's (`urn:passerelle:national-id:TG:NIU`)
    /// or a member number's (`urn:passerelle:member-number:<organisation>`).
    pub fn patient(&mut self, value: Option<&Value>, element: &str) {
        self.place("/beneficiary", element);
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return self.required(element);
        };
        let Some(reference) = value.as_object() else {
            return self.error(
                element,
                "invalid_type",
                "must be a Reference",
                "doit être une Reference",
            );
        };
        // A Reference may carry both; an identifier in another system (a national registry's)
        // says nothing here, one in ours beside a reference could disagree with it.
        let ours = reference
            .get("identifier")
            .and_then(|i| i.get("system"))
            .and_then(Value::as_str)
            .is_some_and(|s| s.starts_with(NATIONAL_ID_PREFIX) || s.starts_with(MEMBER_NUMBER_PREFIX));
        let named = reference.get("reference").filter(|r| !r.is_null());
        if named.is_some() && ours {
            return self.error(
                element,
                "ambiguous_person",
                "give either reference or identifier, not both",
                "indiquez reference ou identifier, pas les deux",
            );
        }
        if let Some(r) = named {
            match r.as_str().and_then(|r| self.local(r).strip_prefix("Patient/")) {
                Some(id) if !id.is_empty() && !id.contains('/') => {
                    self.put("/beneficiary/id", json!(id), &format!("{element}.reference"))
                }
                _ => {
                    let en = self.reference_form("Patient/<beneficiary id>", "or");
                    let fr = self.reference_form("Patient/<id du bénéficiaire>", "ou");
                    self.error(
                        &format!("{element}.reference"),
                        "invalid_reference",
                        format!("must be {en}"),
                        format!("doit être {fr}"),
                    )
                }
            }
            return;
        }
        let element = format!("{element}.identifier");
        let identifier = reference.get("identifier").and_then(Value::as_object);
        let system = identifier.and_then(|i| i.get("system")).and_then(Value::as_str);
        let value = identifier.and_then(|i| i.get("value")).and_then(Value::as_str);
        let (Some(system), Some(value)) = (system, value) else {
            return self.error(
                &element,
                "required",
                "give reference Patient/<id>, or an identifier with system and value",
                "indiquez reference Patient/<id>, ou un identifier avec system et value",
            );
        };
        if let Some(rest) = system.strip_prefix(NATIONAL_ID_PREFIX) {
            let (country, id_type) = rest.split_once(':').unwrap_or((rest, ""));
            let at = format!("{element}.value");
            self.put(
                "/beneficiary/national_id/country",
                json!(country),
                &format!("{element}.system"),
            );
            self.put(
                "/beneficiary/national_id/type",
                json!(id_type),
                &format!("{element}.system"),
            );
            self.put("/beneficiary/national_id/value", json!(value), &at);
            // The type and country are read from the system: their faults are the system's.
            self.by_code.push((
                "/beneficiary/national_id",
                "unknown_national_id_type",
                format!("{}.system", self.at(&element)),
            ));
        } else if let Some(org) = system.strip_prefix(MEMBER_NUMBER_PREFIX) {
            self.put("/beneficiary/organization", json!(org), &format!("{element}.system"));
            self.put("/beneficiary/member_number", json!(value), &format!("{element}.value"));
        } else {
            self.error(
                &format!("{element}.system"),
                "unknown_value",
                format!("must start with {NATIONAL_ID_PREFIX} or {MEMBER_NUMBER_PREFIX}"),
                format!("doit commencer par {NATIONAL_ID_PREFIX} ou {MEMBER_NUMBER_PREFIX}"),
            );
        }
    }

    /// The code of a CodeableConcept's coding in `system` (a coding without a system counts as
    /// one in it); `None`, with the error recorded, when it has none. A `coding`, `system` or
    /// `code` of the wrong JSON type is `invalid_type` there, not a missing coding.
    pub fn code(&mut self, value: &Value, element: &str, system: &str) -> Option<String> {
        let codings = match value.get("coding") {
            None | Some(Value::Null) => None,
            Some(Value::Array(codings)) => Some(codings),
            Some(_) => {
                self.error(
                    &format!("{element}.coding"),
                    "invalid_type",
                    "must be an array of Coding",
                    "doit être un tableau de Coding",
                );
                return None;
            }
        };
        // A null system is an absent one, as every null of a FHIR body is.
        let in_system = |c: &Value| {
            c.get("system")
                .filter(|s| !s.is_null())
                .is_none_or(|s| s.as_str() == Some(system))
        };
        let found = codings.into_iter().flatten().find_map(|c| {
            let in_system = in_system(c);
            in_system.then(|| c.get("code").and_then(Value::as_str)).flatten()
        });
        if found.is_some() {
            return found.map(str::to_owned);
        }
        let mistyped: Vec<(String, &str, &str)> = codings
            .into_iter()
            .flatten()
            .enumerate()
            .flat_map(|(i, c)| {
                if !c.is_object() && !c.is_null() {
                    let at = format!("{element}.coding[{i}]");
                    return vec![(at, "must be a Coding object", "doit être un objet Coding")];
                }
                let not_text = |key: &str| c.get(key).is_some_and(|v| !v.is_string() && !v.is_null());
                let system_mistyped = not_text("system");
                // A code matters only in a coding of the system asked for (or of none).
                let code_mistyped = !system_mistyped && in_system(c) && not_text("code");
                [(system_mistyped, "system"), (code_mistyped, "code")]
                    .into_iter()
                    .filter(|(wrong, _)| *wrong)
                    .map(|(_, key)| {
                        let at = format!("{element}.coding[{i}].{key}");
                        (at, "must be a string", "doit être une chaîne de caractères")
                    })
                    .collect()
            })
            .collect();
        if mistyped.is_empty() {
            self.error(
                element,
                "required",
                format!("needs a coding with a code in {system}"),
                format!("doit avoir un coding avec un code de {system}"),
            );
        }
        for (at, en, fr) in mistyped {
            self.error(&at, "invalid_type", en, fr);
        }
        None
    }

    /// A Money in XOF: the number of francs, or `None` with the error recorded.
    pub fn xof(&mut self, value: &Value, element: &str) -> Option<Value> {
        if let Some(currency) = value.get("currency").filter(|c| !c.is_null()) {
            // Trimmed as every other text of a FHIR body is (API.md §4).
            if currency.as_str().map(str::trim) != Some("XOF") {
                self.error(
                    &format!("{element}.currency"),
                    "unknown_value",
                    "must be XOF",
                    "doit être XOF",
                );
                return None;
            }
        }
        match value.get("value").filter(|v| !v.is_null()) {
            // Past what any amount may be, `whole` saturates: the `/v1` range rule says so.
            Some(v) if whole(v).is_some() => whole(v).map(Value::from),
            Some(_) => {
                self.error(
                    &format!("{element}.value"),
                    "invalid_type",
                    "must be a whole number of XOF",
                    "doit être un nombre entier de XOF",
                );
                None
            }
            None => {
                self.required(&format!("{element}.value"));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_servers_absolute_references_are_read_as_relative() {
        let ours = fhir_base("https://passerelle.example.org/api/");
        assert_eq!(ours, "https://passerelle.example.org/api/fhir/r4/");
        let read = |r| relative(&ours, r);
        assert_eq!(
            read("https://passerelle.example.org/api/fhir/r4/Patient/p1"),
            "Patient/p1"
        );
        assert_eq!(
            read("HTTPS://Passerelle.Example.org/api/fhir/r4/Patient/p1"),
            "Patient/p1"
        );
        assert_eq!(read("Patient/p1"), "Patient/p1");
        for elsewhere in [
            "https://passerelle.example.org/fhir/r4/Patient/p1",
            "https://passerelle.example.org.evil.invalid/api/fhir/r4/Patient/p1",
            "https://passerelle.example.org/api/fhir/r4Patient/p1",
            "http://passerelle.example.org/api/fhir/r4/Patient/p1",
        ] {
            assert_eq!(read(elsewhere), elsewhere);
        }
        // Without a base, nothing is absolute-and-ours; a multi-byte reference is no fault.
        assert_eq!(
            relative(&fhir_base(""), "https://x/fhir/r4/Patient/p1"),
            "https://x/fhir/r4/Patient/p1"
        );
        assert_eq!(read("é"), "é");
    }

    #[test]
    fn rule_errors_land_on_the_element_they_came_from() {
        let source = json!({"resourceType": "Claim"});
        let mut t = Translation::new("Claim", source.as_object().unwrap());
        t.put("/lines", json!([{"unit_price_xof": 5}]), "item");
        t.place("/lines/0/unit_price_xof", "item[0].unitPrice");
        let moved = t.relocate(vec![
            FieldError::required("/lines/0/unit_price_xof"),
            FieldError::required("/lines/1"),
            FieldError::required("/nowhere"),
        ]);
        let fields: Vec<_> = moved.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["Claim.item[0].unitPrice", "Claim.item", "Claim"]);
        assert_eq!(Value::Object(t.body), json!({"lines": [{"unit_price_xof": 5}]}));
    }

    #[test]
    fn modifiers_it_does_not_understand_are_refused_where_they_are() {
        let source = json!({"resourceType": "Claim", "implicitRules": "http://example.org/rules",
            "modifierExtension": [], "extension": [{"url": "http://example.org/plain"}],
            "item": [{"modifierExtension": [{"url": "http://example.org/mod", "valueBoolean": true}],
                      "quantity": {"value": 3, "comparator": ">="}}]});
        let t = Translation::new("Claim", source.as_object().unwrap());
        let mut found: Vec<(&str, &str)> = t.errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
        found.sort_unstable();
        assert_eq!(
            found,
            [
                ("Claim.implicitRules", "unsupported_modifier"),
                ("Claim.item[0].modifierExtension", "unsupported_modifier"),
                ("Claim.item[0].quantity.comparator", "unsupported_modifier"),
            ]
        );
        // In an ordinary extension, a comparator is the extension's; a null is absent; a
        // modifierExtension written as one object is one all the same.
        let source = json!({"resourceType": "Claim", "implicitRules": null,
            "extension": [{"url": "http://example.org/x", "valueQuantity": {"value": 3, "comparator": "<"}}],
            "item": [{"quantity": {"value": 1, "comparator": null},
                      "modifierExtension": {"url": "http://example.org/m", "valueBoolean": true}}]});
        let t = Translation::new("Claim", source.as_object().unwrap());
        let found: Vec<&str> = t.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(found, ["Claim.item[0].modifierExtension"]);
    }

    /// The walk copies no path per element: a member name of 500,000 bytes over an array of
    /// 260,000 objects (a 1 MiB body) was 130 GB of copying when each element wrote out its
    /// path; now one pass (this test would not end in CI's time otherwise).
    #[test]
    fn a_long_name_over_a_long_array_is_walked_once() {
        let mut source = Map::new();
        source.insert("resourceType".into(), json!("Claim"));
        let mut items = vec![json!({}); 260_000];
        items[259_999] = json!({"modifierExtension": [{"url": "http://example.org/m"}]});
        source.insert("a".repeat(500_000), Value::Array(items));
        let t = Translation::new("Claim", &source);
        assert_eq!(t.errors.len(), 1);
        assert!(t.errors[0].field.ends_with("a[259999].modifierExtension"));
    }

    #[test]
    fn a_resource_type_absent_mistyped_or_another_says_which() {
        let code = |source: Value| {
            let t = Translation::new("Claim", source.as_object().unwrap());
            t.errors
                .iter()
                .map(|e| (e.field.clone(), e.code.clone()))
                .collect::<Vec<_>>()
        };
        let at = "Claim.resourceType".to_owned();
        assert_eq!(code(json!({"resourceType": "Claim"})), []);
        assert_eq!(code(json!({})), [(at.clone(), "required".to_owned())]);
        assert_eq!(
            code(json!({"resourceType": null})),
            [(at.clone(), "required".to_owned())]
        );
        assert_eq!(
            code(json!({"resourceType": 7})),
            [(at.clone(), "invalid_type".to_owned())]
        );
        assert_eq!(
            code(json!({"resourceType": "Patient"})),
            [(at, "unknown_value".to_owned())]
        );
    }

    #[test]
    fn a_patient_is_named_three_ways() {
        let source = json!({"resourceType": "Claim"});
        let mut t = Translation::new("Claim", source.as_object().unwrap());
        t.patient(Some(&json!({"reference": "Patient/abc"})), "patient");
        assert_eq!(t.body["beneficiary"], json!({"id": "abc"}));
        let mut t = Translation::new("Claim", source.as_object().unwrap());
        let nid = json!({"identifier": {"system": "urn:passerelle:national-id:TG:NIU", "value": "1234"}});
        t.patient(Some(&nid), "patient");
        assert_eq!(
            t.body["beneficiary"],
            json!({"national_id": {"country": "TG", "type": "NIU", "value": "1234"}})
        );
        let mut t = Translation::new("Claim", source.as_object().unwrap());
        let member = json!({"identifier": {"system": "urn:passerelle:member-number:mut-a", "value": "A-1"}});
        t.patient(Some(&member), "patient");
        assert_eq!(
            t.body["beneficiary"],
            json!({"organization": "mut-a", "member_number": "A-1"})
        );
        assert!(t.errors.is_empty());
        let mut t = Translation::new("Other", source.as_object().unwrap());
        t.patient(Some(&json!({"reference": "Practitioner/x"})), "patient");
        let fields: Vec<_> = t.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["Other.resourceType", "Other.patient.reference"]);
    }

    #[test]
    fn at_most_a_hundred_faults_then_how_many_more() {
        let source = json!({"resourceType": "Claim"});
        let mut t = Translation::new("Claim", source.as_object().unwrap());
        for i in 0..150 {
            t.required(&format!("item[{i}].unitPrice"));
        }
        let rule = vec![FieldError::required("/external_id")];
        let all = t.with_rule_errors(rule.clone());
        assert_eq!(all.len(), MAX_ISSUES + 1);
        assert_eq!(all[99].field, "Claim.item[99].unitPrice");
        assert_eq!(
            (all[100].field.as_str(), all[100].code.as_str()),
            ("Claim", "too_many_errors")
        );
        assert!(all[100].en.contains("at least 50 more"), "{}", all[100].en);
        // Under the limit, the rules' errors follow, and the count is exact.
        let mut t = Translation::new("Claim", source.as_object().unwrap());
        t.place("/lines", "item");
        for i in 0..99 {
            t.required(&format!("identifier[{i}]"));
        }
        let rules: Vec<_> = (0..3)
            .map(|i| FieldError::required(format!("/lines/{i}/code")))
            .collect();
        let all = t.with_rule_errors(rules);
        assert_eq!(all.len(), MAX_ISSUES + 1);
        assert_eq!(all[99].field, "Claim.item");
        assert!(all[100].en.starts_with("2 more"), "{}", all[100].en);
    }
}
