//! OpenAPI links (3.1 §4.8.20): from an answer to the operations that act on what it names, with
//! the answer's ids as their parameters. `Location` says where a created resource is, in prose a
//! generator cannot follow; a link says which operation reads it, with which value, so that a
//! client (or a stateful test tool) goes from a registration to its principal's coverage, or from
//! a claim to its adjudication, without reading the descriptions.

use serde_json::{json, Map, Value};
use utoipa::openapi::{OpenApi as Document, RefOr};

/// One link: from an operation's answer of one status, by name, to an operation, with its
/// parameters as runtime expressions.
pub(super) struct Link {
    pub from: &'static str,
    pub status: &'static str,
    pub name: &'static str,
    pub to: &'static str,
    pub parameters: &'static [(&'static str, &'static str)],
    pub description: &'static str,
}

const ID: &[(&str, &str)] = &[("id", "$response.body#/id")];

/// Every link of the document.
pub(super) const LINKS: &[Link] = &[
    // Registration: the household's principal, their coverage, and a dependant added to it.
    Link {
        from: "register",
        status: "201",
        name: "GetPrincipal",
        to: "get_beneficiary",
        parameters: &[("id", "$response.body#/members/0/beneficiary/id")],
        description: "The principal (members are listed principal first).",
    },
    Link {
        from: "register",
        status: "201",
        name: "GetPrincipalCoverage",
        to: "get_coverage",
        parameters: &[("id", "$response.body#/members/0/coverage/id")],
        description: "The principal's coverage, which the dependants' coverages follow.",
    },
    Link {
        from: "register",
        status: "201",
        name: "AddDependant",
        to: "add_dependant",
        parameters: &[("id", "$response.body#/members/0/coverage/id")],
        description: "Adds a dependant to the household.",
    },
    Link {
        from: "add_dependant",
        status: "201",
        name: "GetBeneficiary",
        to: "get_beneficiary",
        parameters: &[("id", "$response.body#/beneficiary/id")],
        description: "The dependant.",
    },
    Link {
        from: "add_dependant",
        status: "201",
        name: "GetCoverage",
        to: "get_coverage",
        parameters: &[("id", "$response.body#/coverage/id")],
        description: "The dependant's coverage.",
    },
    Link {
        from: "create_coverage",
        status: "201",
        name: "GetCoverage",
        to: "get_coverage",
        parameters: ID,
        description: "The coverage created.",
    },
    Link {
        from: "create_coverage",
        status: "201",
        name: "GetBeneficiary",
        to: "get_beneficiary",
        parameters: &[("id", "$response.body#/beneficiary")],
        description: "The person covered.",
    },
    // A person and a coverage, and what acts on them.
    Link {
        from: "get_beneficiary",
        status: "200",
        name: "ListCoverages",
        to: "list_coverages",
        parameters: &[("beneficiary", "$response.body#/id")],
        description: "The person's coverages that the caller may see.",
    },
    Link {
        from: "get_beneficiary",
        status: "200",
        name: "FhirPatient",
        to: "fhir_read_patient",
        parameters: ID,
        description: "The same person as a FHIR Patient.",
    },
    Link {
        from: "get_coverage",
        status: "200",
        name: "PatchCoverage",
        to: "patch_coverage",
        parameters: ID,
        description: "Changes the coverage's status or dates (`If-Match` its `version`).",
    },
    Link {
        from: "get_coverage",
        status: "200",
        name: "ListContributions",
        to: "list_contributions",
        parameters: ID,
        description: "The contributions recorded for the coverage.",
    },
    Link {
        from: "get_coverage",
        status: "200",
        name: "AddContribution",
        to: "add_contribution",
        parameters: ID,
        description: "Records a contribution paid.",
    },
    Link {
        from: "get_coverage",
        status: "200",
        name: "FhirCoverage",
        to: "fhir_read_coverage",
        parameters: ID,
        description: "The same coverage as a FHIR Coverage.",
    },
    Link {
        from: "add_contribution",
        status: "201",
        name: "CancelContribution",
        to: "cancel_contribution",
        parameters: &[("id", "$request.path.id"), ("contribution", "$response.body#/id")],
        description: "Cancels the contribution, recorded by mistake.",
    },
    // Products and organisations.
    Link {
        from: "create_product",
        status: "201",
        name: "GetProduct",
        to: "get_product",
        parameters: ID,
        description: "The product, in its current version.",
    },
    Link {
        from: "create_product",
        status: "201",
        name: "ReplaceProduct",
        to: "replace_product",
        parameters: ID,
        description: "Publishes a new version of the product.",
    },
    Link {
        from: "create_product",
        status: "201",
        name: "ListProductVersions",
        to: "list_product_versions",
        parameters: ID,
        description: "Every version of the product.",
    },
    Link {
        from: "create_organization",
        status: "201",
        name: "GetOrganization",
        to: "get_organization",
        parameters: ID,
        description: "The organisation created.",
    },
    Link {
        from: "create_organization",
        status: "201",
        name: "DeactivateOrganization",
        to: "deactivate_organization",
        parameters: ID,
        description: "Deactivates the organisation.",
    },
    // Claims, in /v1 and in FHIR.
    Link {
        from: "submit_claim",
        status: "201",
        name: "GetClaim",
        to: "get_claim",
        parameters: ID,
        description: "The claim as it stands.",
    },
    Link {
        from: "submit_claim",
        status: "201",
        name: "BaseAdjudication",
        to: "base_adjudication",
        parameters: ID,
        description: "The base payer's decision, while the claim is `awaiting_base`.",
    },
    Link {
        from: "submit_claim",
        status: "201",
        name: "Adjudication",
        to: "adjudication",
        parameters: ID,
        description: "The mutuelle's decision, once the claim is `awaiting_complementary`.",
    },
    Link {
        from: "submit_claim",
        status: "201",
        name: "CancelClaim",
        to: "cancel_claim",
        parameters: ID,
        description: "Cancels the claim while it awaits adjudication (its submitter).",
    },
    Link {
        from: "submit_claim",
        status: "201",
        name: "FhirClaimResponse",
        to: "fhir_read_claim_response",
        parameters: ID,
        description: "The claim as a FHIR ClaimResponse.",
    },
    Link {
        from: "fhir_submit_claim",
        status: "201",
        name: "ReadClaimResponse",
        to: "fhir_read_claim_response",
        parameters: ID,
        description: "The ClaimResponse as the claim stands (its `id` is the claim's).",
    },
    Link {
        from: "fhir_submit_claim",
        status: "201",
        name: "GetClaim",
        to: "get_claim",
        parameters: ID,
        description: "The claim in `/v1`, where its adjudications and cancellation are.",
    },
    // Settlements, bulk jobs and webhooks.
    Link {
        from: "create_settlement",
        status: "201",
        name: "GetSettlement",
        to: "get_settlement",
        parameters: ID,
        description: "The batch as it stands.",
    },
    Link {
        from: "create_settlement",
        status: "201",
        name: "AddPayment",
        to: "add_payment",
        parameters: ID,
        description: "Records a payment of the batch.",
    },
    Link {
        from: "upload",
        status: "202",
        name: "GetBatch",
        to: "get_batch",
        parameters: ID,
        description: "The job's progress, until its `status` is final.",
    },
    Link {
        from: "upload",
        status: "202",
        name: "ListBatchErrors",
        to: "list_batch_errors",
        parameters: ID,
        description: "Every row refused, by row.",
    },
    Link {
        from: "upload",
        status: "202",
        name: "ListBatchDuplicates",
        to: "list_batch_duplicates",
        parameters: ID,
        description: "Every possible duplicate, by row.",
    },
    Link {
        from: "create_webhook",
        status: "201",
        name: "GetWebhook",
        to: "get_webhook",
        parameters: ID,
        description: "The subscription (without its secret, shown once here).",
    },
    Link {
        from: "create_webhook",
        status: "201",
        name: "ListDeliveries",
        to: "list_deliveries",
        parameters: ID,
        description: "The subscription's deliveries and their attempts.",
    },
    Link {
        from: "create_webhook",
        status: "201",
        name: "DeleteWebhook",
        to: "delete_webhook",
        parameters: ID,
        description: "Deletes the subscription; its pending deliveries are dropped.",
    },
    // The reads of those, to the same acts.
    Link {
        from: "get_claim",
        status: "200",
        name: "BaseAdjudication",
        to: "base_adjudication",
        parameters: ID,
        description: "The base payer's decision, while the claim is `awaiting_base`.",
    },
    Link {
        from: "get_claim",
        status: "200",
        name: "Adjudication",
        to: "adjudication",
        parameters: ID,
        description: "The mutuelle's decision, once the claim is `awaiting_complementary`.",
    },
    Link {
        from: "get_claim",
        status: "200",
        name: "CancelClaim",
        to: "cancel_claim",
        parameters: ID,
        description: "Cancels the claim while it awaits adjudication (its submitter).",
    },
    Link {
        from: "get_claim",
        status: "200",
        name: "FhirClaimResponse",
        to: "fhir_read_claim_response",
        parameters: ID,
        description: "The claim as a FHIR ClaimResponse.",
    },
    Link {
        from: "get_settlement",
        status: "200",
        name: "AddPayment",
        to: "add_payment",
        parameters: ID,
        description: "Records a payment of the batch.",
    },
    Link {
        from: "get_batch",
        status: "200",
        name: "ListBatchErrors",
        to: "list_batch_errors",
        parameters: ID,
        description: "Every row refused, by row.",
    },
    Link {
        from: "get_batch",
        status: "200",
        name: "ListBatchDuplicates",
        to: "list_batch_duplicates",
        parameters: ID,
        description: "Every possible duplicate, by row.",
    },
    Link {
        from: "get_webhook",
        status: "200",
        name: "ListDeliveries",
        to: "list_deliveries",
        parameters: ID,
        description: "The subscription's deliveries and their attempts.",
    },
];

/// Writes [`LINKS`] into the answers they start from. An operation or an answer missing is a
/// fault of this table, caught by the test below. utoipa's own `Link` writes `operation_id`
/// where OpenAPI says `operationId`, so each answer's links are written as JSON, under the name
/// OpenAPI gives them, as the document's `webhooks` are.
pub(super) fn add_links(doc: &mut Document) {
    for link in LINKS {
        let Some(response) = doc
            .paths
            .paths
            .values_mut()
            .flat_map(|item| {
                [
                    &mut item.get,
                    &mut item.post,
                    &mut item.put,
                    &mut item.patch,
                    &mut item.delete,
                ]
            })
            .flatten()
            .find(|op| op.operation_id.as_deref() == Some(link.from))
            .and_then(|op| op.responses.responses.get_mut(link.status))
        else {
            continue;
        };
        let RefOr::T(response) = response else { continue };
        let parameters: Map<String, Value> = link
            .parameters
            .iter()
            .map(|(name, expression)| ((*name).to_owned(), Value::from(*expression)))
            .collect();
        let links = response
            .extensions
            .get_or_insert_with(Default::default)
            .entry("links".to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(links) = links {
            links.insert(
                link.name.to_owned(),
                json!({"operationId": link.to, "parameters": parameters, "description": link.description}),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::LINKS;

    /// The operation with this id, and its path's parameters.
    fn operation<'d>(doc: &'d Value, id: &str) -> (&'d Value, Vec<&'d Value>) {
        for item in doc["paths"].as_object().unwrap().values() {
            for (method, op) in item.as_object().unwrap() {
                if method != "parameters" && op["operationId"] == id {
                    let shared = item["parameters"].as_array().into_iter().flatten();
                    let own = op["parameters"].as_array().into_iter().flatten();
                    return (op, shared.chain(own).collect());
                }
            }
        }
        panic!("no operation {id}");
    }

    /// Whether the JSON Pointer names a member the schema may hold, through references, `allOf`
    /// parts and array items.
    fn resolves(doc: &Value, schema: &Value, pointer: &[&str]) -> bool {
        if let Some(reference) = schema["$ref"].as_str() {
            let target = doc.pointer(reference.trim_start_matches('#')).unwrap();
            return resolves(doc, target, pointer);
        }
        let Some((first, rest)) = pointer.split_first() else {
            return true;
        };
        let parts = schema["allOf"].as_array().into_iter().flatten();
        if parts.clone().any(|part| resolves(doc, part, pointer)) {
            return true;
        }
        if first.parse::<usize>().is_ok() && schema["type"] == "array" {
            return resolves(doc, &schema["items"], rest);
        }
        schema["properties"]
            .get(*first)
            .is_some_and(|member| resolves(doc, member, rest))
    }

    #[test]
    fn every_link_names_an_operation_its_parameters_and_a_value_the_answer_holds() {
        let doc = serde_json::to_value(super::super::document()).unwrap();
        let mut written = 0;
        for link in LINKS {
            let (from, from_parameters) = operation(&doc, link.from);
            let response = &from["responses"][link.status];
            assert_eq!(
                response["links"][link.name]["operationId"], link.to,
                "{} {} {}",
                link.from, link.status, link.name
            );
            written += 1;
            let (_, to_parameters) = operation(&doc, link.to);
            let path_parameters: Vec<&str> = to_parameters
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            for required in &path_parameters {
                assert!(
                    link.parameters.iter().any(|(name, _)| name == required),
                    "{}: {} needs {required}",
                    link.name,
                    link.to
                );
            }
            for (name, expression) in link.parameters {
                assert!(
                    to_parameters.iter().any(|p| p["name"] == *name),
                    "{}: {} has no parameter {name}",
                    link.name,
                    link.to
                );
                if let Some(pointer) = expression.strip_prefix("$response.body#/") {
                    let schema = &response["content"]["application/json"]["schema"];
                    let schema = if schema.is_null() {
                        &response["content"]["application/fhir+json"]["schema"]
                    } else {
                        schema
                    };
                    let segments: Vec<&str> = pointer.split('/').collect();
                    assert!(resolves(&doc, schema, &segments), "{}: {expression}", link.name);
                } else if let Some(name) = expression.strip_prefix("$request.path.") {
                    assert!(
                        from_parameters.iter().any(|p| p["in"] == "path" && p["name"] == name),
                        "{}: {expression}",
                        link.name
                    );
                } else {
                    panic!("{}: {expression} is no expression this table uses", link.name);
                }
            }
        }
        let all: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .flat_map(|op| op["responses"].as_object().into_iter().flatten())
            .map(|(_, response)| response["links"].as_object().map_or(0, |l| l.len()))
            .sum();
        assert_eq!((written, all), (LINKS.len(), LINKS.len()));
    }
}
