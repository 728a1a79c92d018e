//! Organisations: the operator, mutuelles, national schemes, health facilities and auditors.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// A readable slug chosen by the operator: `^[a-z0-9][a-z0-9-]{1,62}$`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrgId(String);

impl OrgId {
    pub fn parse(s: &str) -> Option<OrgId> {
        let bytes = s.as_bytes();
        let ok = (2..=63).contains(&bytes.len())
            && matches!(bytes[0], b'a'..=b'z' | b'0'..=b'9')
            && bytes[1..].iter().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'));
        ok.then(|| OrgId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OrgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    Operator,
    Mutuelle,
    Scheme,
    Provider,
    Auditor,
}

impl OrgKind {
    pub const ALL: [OrgKind; 5] = [
        OrgKind::Operator,
        OrgKind::Mutuelle,
        OrgKind::Scheme,
        OrgKind::Provider,
        OrgKind::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrgKind::Operator => "operator",
            OrgKind::Mutuelle => "mutuelle",
            OrgKind::Scheme => "scheme",
            OrgKind::Provider => "provider",
            OrgKind::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<OrgKind> {
        OrgKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Operators and auditors read across every organisation.
    pub fn reads_everything(self) -> bool {
        matches!(self, OrgKind::Operator | OrgKind::Auditor)
    }
}

/// ISO 3166-1 alpha-2 codes, officially assigned.
const ISO_3166_ALPHA2: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Country(String);

impl Country {
    pub fn parse(s: &str) -> Option<Country> {
        (s.len() == 2 && ISO_3166_ALPHA2.split(' ').any(|c| c == s)).then(|| Country(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    pub id: OrgId,
    pub kind: OrgKind,
    pub country: Country,
    pub name: String,
    pub registration_number: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Set while an operator has deactivated the organisation: its requests are refused.
    /// (Absent from answers kept for idempotency before it existed.)
    #[serde(default)]
    pub deactivated_at: Option<DateTime<Utc>>,
}

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_REGISTRATION_NUMBER_CHARS: usize = 64;

/// The fields of a create request, as received; `validate` turns them into an organisation or
/// lists every rule they break.
#[derive(Debug, Clone, Default)]
pub struct OrganizationDraft {
    pub id: Option<String>,
    pub kind: Option<String>,
    pub country: Option<String>,
    pub name: Option<String>,
    pub registration_number: Option<String>,
}

impl OrganizationDraft {
    pub fn validate(self, created_at: DateTime<Utc>) -> Result<Organization, Vec<FieldError>> {
        let mut errors = Vec::new();
        let id = match self.id.as_deref() {
            None => {
                errors.push(FieldError::required("/id"));
                None
            }
            Some(raw) => OrgId::parse(raw).or_else(|| {
                errors.push(FieldError::new(
                    "/id",
                    "invalid_format",
                    "must match ^[a-z0-9][a-z0-9-]{1,62}$ (lower-case letters, digits and dashes)",
                    "doit respecter ^[a-z0-9][a-z0-9-]{1,62}$ (minuscules, chiffres et tirets)",
                ));
                None
            }),
        };
        let kind = match self.kind.as_deref() {
            None => {
                errors.push(FieldError::required("/kind"));
                None
            }
            Some(raw) => OrgKind::parse(raw).or_else(|| {
                errors.push(FieldError::new(
                    "/kind",
                    "unknown_value",
                    "must be one of operator, mutuelle, scheme, provider, auditor",
                    "doit être operator, mutuelle, scheme, provider ou auditor",
                ));
                None
            }),
        };
        let country = match self.country.as_deref() {
            None => {
                errors.push(FieldError::required("/country"));
                None
            }
            Some(raw) => Country::parse(raw).or_else(|| {
                errors.push(FieldError::new(
                    "/country",
                    "invalid_country",
                    "must be an ISO 3166-1 alpha-2 code in upper case, such as TG, ML or SN",
                    "doit être un code ISO 3166-1 alpha-2 en majuscules, comme TG, ML ou SN",
                ));
                None
            }),
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
                    // Shown to every party: a direction override would show it backwards.
                    errors.push(FieldError::control_characters("/name"));
                    None
                } else {
                    Some(trimmed.to_owned())
                }
            }
        };
        let registration_number = match self.registration_number {
            Some(raw) if raw.trim().chars().any(crate::text::is_forbidden) => {
                errors.push(FieldError::control_characters("/registration_number"));
                None
            }
            Some(raw) if raw.trim().is_empty() || raw.chars().count() > MAX_REGISTRATION_NUMBER_CHARS => {
                errors.push(FieldError::new(
                    "/registration_number",
                    "invalid_length",
                    format!("must be 1 to {MAX_REGISTRATION_NUMBER_CHARS} characters"),
                    format!("doit compter de 1 à {MAX_REGISTRATION_NUMBER_CHARS} caractères"),
                ));
                None
            }
            other => other.map(|r| r.trim().to_owned()),
        };
        match (id, kind, country, name) {
            (Some(id), Some(kind), Some(country), Some(name)) if errors.is_empty() => Ok(Organization {
                id,
                kind,
                country,
                name,
                registration_number,
                created_at,
                deactivated_at: None,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_contract() {
        assert!(OrgId::parse("mut-tsevie").is_some());
        assert!(OrgId::parse("tg-inam").is_some());
        assert!(OrgId::parse("a").is_none());
        assert!(OrgId::parse("-abc").is_none());
        assert!(OrgId::parse("Abc").is_none());
        assert!(OrgId::parse(&"a".repeat(63)).is_some());
        assert!(OrgId::parse(&"a".repeat(64)).is_none());
    }

    #[test]
    fn a_draft_reports_every_broken_rule() {
        let draft = OrganizationDraft {
            id: Some("Bad Id".into()),
            kind: Some("bank".into()),
            country: Some("XX".into()),
            name: None,
            registration_number: Some(String::new()),
        };
        let errors = draft.validate(Utc::now()).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["/id", "/kind", "/country", "/name", "/registration_number"]);
    }

    #[test]
    fn names_hold_no_invisible_or_control_character() {
        for bad in ["A\nB", "Mutuelle \u{202E}ABC", "Mutuelle\u{200B}", "Mu\u{FEFF}tuelle"] {
            let draft = OrganizationDraft {
                id: Some("mut-segou".into()),
                kind: Some("mutuelle".into()),
                country: Some("ML".into()),
                name: Some(bad.into()),
                registration_number: Some(format!("RC{bad}")),
            };
            let errors = draft.validate(Utc::now()).unwrap_err();
            let found: Vec<_> = errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
            assert_eq!(
                found,
                [
                    ("/name", "invalid_characters"),
                    ("/registration_number", "invalid_characters")
                ],
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_valid_draft_keeps_accents() {
        let org = OrganizationDraft {
            id: Some("mut-segou".into()),
            kind: Some("mutuelle".into()),
            country: Some("ML".into()),
            name: Some("Mutuelle de Ségou".into()),
            registration_number: None,
        }
        .validate(Utc::now())
        .unwrap();
        assert_eq!(org.name, "Mutuelle de Ségou");
        assert_eq!(org.kind, OrgKind::Mutuelle);
    }

    fn draft(name: &str, registration_number: Option<&str>) -> OrganizationDraft {
        OrganizationDraft {
            id: Some("mut-tsevie".into()),
            kind: Some("mutuelle".into()),
            country: Some("TG".into()),
            name: Some(name.into()),
            registration_number: registration_number.map(str::to_owned),
        }
    }

    fn refusals(draft: OrganizationDraft) -> Vec<(String, String)> {
        draft
            .validate(Utc::now())
            .unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    }

    /// The organisation is answered with its id and country as created (API.md §5:
    /// `{id, kind, country, …}`), and its id reads the same as text.
    #[test]
    fn an_organisation_keeps_its_id_and_country_as_given() {
        let org = draft("Mutuelle de santé de Tsévié", Some("TG-MS-2019-014"))
            .validate(Utc::now())
            .unwrap();
        assert_eq!(org.id.as_str(), "mut-tsevie");
        assert_eq!(org.id.to_string(), "mut-tsevie");
        assert_eq!(org.country.as_str(), "TG");
        assert_eq!(org.registration_number.as_deref(), Some("TG-MS-2019-014"));
        assert_eq!(org.deactivated_at, None);
    }

    /// API.md §2: operators and auditors read everything; the other kinds read their own.
    #[test]
    fn only_operators_and_auditors_read_everything() {
        for kind in OrgKind::ALL {
            assert_eq!(
                kind.reads_everything(),
                matches!(kind, OrgKind::Operator | OrgKind::Auditor),
                "{}",
                kind.as_str()
            );
        }
    }

    /// The create body (OpenAPI): a name of 1–200 characters once trimmed, counted in
    /// characters (accents are one each), kept trimmed.
    #[test]
    fn a_name_holds_up_to_200_characters_once_trimmed() {
        let longest = "é".repeat(MAX_NAME_CHARS);
        let org = draft(&format!("  {longest} "), None).validate(Utc::now()).unwrap();
        assert_eq!(org.name, longest);
        assert_eq!(
            refusals(draft(&format!("{longest}e"), None)),
            [("/name".to_owned(), "too_long".to_owned())]
        );
    }

    /// The create body (OpenAPI): a registration number is optional, of 1–64 characters; a
    /// blank one or one past 64 is `invalid_length`, and the organisation is not created
    /// without it even when every other field is right.
    #[test]
    fn a_registration_number_holds_1_to_64_characters() {
        let longest = "É".repeat(MAX_REGISTRATION_NUMBER_CHARS);
        let org = draft("Mutuelle de Tsévié", Some(&longest))
            .validate(Utc::now())
            .unwrap();
        assert_eq!(org.registration_number.as_deref(), Some(longest.as_str()));
        let invalid_length = [("/registration_number".to_owned(), "invalid_length".to_owned())];
        for refused in [format!("{longest}1"), String::new(), "   ".to_owned()] {
            assert_eq!(
                refusals(draft("Mutuelle de Tsévié", Some(&refused))),
                invalid_length,
                "{refused:?}"
            );
        }
    }
}
