//! Shapes that generated clients can use. The document was valid and every answer fit it, yet
//! code generators (openapi-python-client, openapi-typescript with openapi-fetch) could not build
//! a check by national id, a PATCH, a bulk upload or a FHIR request from it, and typed each list's
//! items apart from the item they list. Each function here rewrites one such shape.

use serde_json::{json, Value};
use utoipa::openapi::schema::{ArrayItems, Schema};
use utoipa::openapi::{OpenApi as Document, Ref, RefOr};

/// A named schema from its JSON form.
pub(super) fn schema(value: Value) -> RefOr<Schema> {
    match serde_json::from_value(value) {
        Ok(schema) => schema,
        Err(e) => panic!("a schema of openapi/client_shapes.rs does not read: {e}"),
    }
}

/// The description a schema's member carries, or `null`.
fn member_description(object: &utoipa::openapi::schema::Object, member: &str) -> Value {
    object
        .properties
        .get(member)
        .and_then(|p| serde_json::to_value(p).ok())
        .and_then(|p| p.get("description").cloned())
        .unwrap_or(Value::Null)
}

/// A person is named in exactly one of three forms (`read_person`). Each form is a closed schema
/// of its own, named, under `oneOf`: the object's members alone let a validator or a client
/// accept none, or two at once, and forms written with `{"type": "null"}` members (as the
/// service reads a member sent as `null`: not sent) made generators write no model at all.
pub(super) fn person_forms(doc: &mut Document) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::Object(selector))) = components.schemas.get("PersonSelector").cloned() else {
        return;
    };
    let described = |member: &str| member_description(&selector, member);
    let description = selector.description.clone();
    let example = selector.example.clone();
    let forms = [
        (
            "PersonById",
            "By the beneficiary id Passerelle gave.",
            json!({"id": {"type": "string", "minLength": 1, "description": described("id")}}),
            vec!["id"],
            json!({"id": "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f"}),
        ),
        (
            "PersonByNationalId",
            "By national id, across every organisation.",
            json!({"national_id": {"$ref": "#/components/schemas/NationalIdWrite", "description": described("national_id")}}),
            vec!["national_id"],
            json!({"national_id": {"country": "TG", "type": "NIU", "value": "1234 5678 9012"}}),
        ),
        (
            "PersonByMemberNumber",
            "By an organisation's member number, and the birth date of the one meant among those it covers.",
            json!({
                "organization": {"type": "string", "minLength": 1, "description": described("organization")},
                "member_number": {"type": "string", "minLength": 1, "description": described("member_number")},
                "birth_date": {"type": "string", "description": described("birth_date"), "example": "2019-03-14"}
            }),
            vec!["organization", "member_number"],
            json!({"organization": "mut-tsevie", "member_number": "TSV-0042"}),
        ),
    ];
    let mut refs = Vec::new();
    for (name, what, properties, required, example) in forms {
        components.schemas.insert(
            name.to_owned(),
            schema(json!({
                "type": "object",
                "description": what,
                "required": required,
                "properties": properties,
                "additionalProperties": false,
                "example": example,
            })),
        );
        refs.push(json!({"$ref": format!("#/components/schemas/{name}")}));
    }
    let description = format!(
        "{} The service also takes the other members sent as `null`, as not sent.",
        description.unwrap_or_default()
    );
    components.schemas.insert(
        "PersonSelector".to_owned(),
        schema(json!({"oneOf": refs, "description": description.trim(), "example": example})),
    );
}

/// Each list's items are its item schema by reference: utoipa inlined a copy into each
/// `ListOf_<Item>`, without the value sets added to the item, so a client typed a claim of a
/// list apart from a claim.
pub(super) fn list_items_by_reference(doc: &mut Document) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let names: Vec<String> = components.schemas.keys().cloned().collect();
    for name in names {
        let Some(item) = name.strip_prefix("ListOf_") else {
            continue;
        };
        if !components.schemas.contains_key(item) {
            continue;
        }
        let reference = RefOr::Ref(Ref::from_schema_name(item));
        if let Some(RefOr::T(Schema::Object(list))) = components.schemas.get_mut(&name) {
            if let Some(RefOr::T(Schema::Array(items))) = list.properties.get_mut("items") {
                items.items = ArrayItems::RefOrSchema(Box::new(reference));
            }
        }
    }
}

/// A PATCH body in one media type: the same schema under `application/json` too made
/// openapi-python-client write a body type it then could not import. The service still takes
/// `application/json` as a merge patch, which the body's description says.
pub(super) fn one_patch_media_type(doc: &mut Document) {
    for item in doc.paths.paths.values_mut() {
        let Some(body) = item.patch.as_mut().and_then(|op| op.request_body.as_mut()) else {
            continue;
        };
        if body.content.contains_key("application/merge-patch+json")
            && body.content.remove("application/json").is_some()
        {
            body.description = Some(
                "A JSON merge patch (RFC 7396) of the members the schema lists. Sent as `application/json`, the \
                 same body is read the same way."
                    .to_owned(),
            );
        }
    }
}

/// A bulk upload's body is a file, which generators send as bytes and as the media type chosen,
/// and not a JSON string.
pub(super) fn uploads_as_files(doc: &mut Document) {
    let Some(body) = doc
        .paths
        .paths
        .get_mut("/v1/registrations/batches")
        .and_then(|item| item.post.as_mut())
        .and_then(|op| op.request_body.as_mut())
    else {
        return;
    };
    for (media_type, content) in body.content.iter_mut() {
        content.schema = Some(schema(json!({
            "type": "string",
            "format": "binary",
            "contentMediaType": media_type,
        })));
    }
}

/// A closed extension (`allOf` of parts, `unevaluatedProperties: false`: a dependant is a person
/// plus a relationship, with no other member) written as the one object it is, closed with
/// `additionalProperties: false`: generators ignore `unevaluatedProperties`, so their models took
/// any member and the service answered 422 `unknown_field`. The parts extended are dropped once
/// nothing refers to them. Runs after the value sets, which the copied members keep.
pub(super) fn flatten_closed_extensions(doc: &mut Document) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let as_json = |schema: &RefOr<Schema>| serde_json::to_value(schema).unwrap_or(Value::Null);
    let mut flattened = Vec::new();
    let mut extended = Vec::new();
    for (name, extension) in &components.schemas {
        let outer = as_json(extension);
        if outer.get("unevaluatedProperties") != Some(&Value::Bool(false)) {
            continue;
        }
        let Some(parts) = outer.get("allOf").and_then(Value::as_array) else {
            continue;
        };
        let mut properties = serde_json::Map::new();
        let mut required: Vec<Value> = Vec::new();
        let mut whole = true;
        let mut example = outer.get("example").cloned();
        for part in parts {
            let part = match part.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    let target = reference.strip_prefix("#/components/schemas/").unwrap_or_default();
                    extended.push(target.to_owned());
                    components.schemas.get(target).map(as_json).unwrap_or(Value::Null)
                }
                None => part.clone(),
            };
            let (Some(members), None) = (part.get("properties").and_then(Value::as_object), part.get("allOf")) else {
                whole = false;
                break;
            };
            properties.extend(members.clone());
            if example.is_none() {
                example = part.get("example").cloned();
            }
            for member in part.get("required").and_then(Value::as_array).into_iter().flatten() {
                if !required.contains(member) {
                    required.push(member.clone());
                }
            }
        }
        if !whole {
            continue;
        }
        let mut flat = json!({"type": "object", "required": required, "properties": properties,
            "additionalProperties": false});
        if let Some(description) = outer.get("description") {
            flat["description"] = description.clone();
        }
        if let Some(example) = example {
            flat["example"] = example;
        }
        flattened.push((name.clone(), schema(flat)));
    }
    for (name, flat) in flattened {
        components.schemas.insert(name, flat);
    }
    // Drop the parts that nothing refers to any more (the person the extensions extended).
    let text = serde_json::to_string(&*doc).unwrap_or_default();
    if let Some(components) = doc.components.as_mut() {
        for part in extended {
            if !text.contains(&format!("\"#/components/schemas/{part}\"")) {
                components.schemas.remove(&part);
            }
        }
    }
}

/// A header parameter is a string or absent, never `null`: `Option<String>` gave `["string",
/// "null"]`, which openapi-python-client typed as a value that may be `None`, and sending it so
/// raised in httpx before any request left; openapi-core could not validate such an operation at
/// all.
pub(super) fn headers_never_null(doc: &mut Document) {
    use utoipa::openapi::path::ParameterIn;
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.patch,
            &mut item.delete,
            &mut item.head,
        ];
        for op in operations.into_iter().flatten() {
            for parameter in op.parameters.iter_mut().flatten() {
                if parameter.parameter_in != ParameterIn::Header {
                    continue;
                }
                let Some(mut form) = parameter.schema.as_ref().and_then(|s| serde_json::to_value(s).ok()) else {
                    continue;
                };
                let Some(types) = form.get("type").and_then(Value::as_array).cloned() else {
                    continue;
                };
                let kept: Vec<Value> = types.into_iter().filter(|t| t != "null").collect();
                form["type"] = match kept.as_slice() {
                    [one] => one.clone(),
                    _ => Value::Array(kept),
                };
                parameter.schema = Some(schema(form));
            }
        }
    }
}

/// The members of the FHIR capability statement that the service sends, typed: bare objects
/// were typed by openapi-typescript as objects with no member (`cap.software.name` did not
/// compile), and by openapi-python-client as untyped extras.
pub(super) fn capability_statement_members(doc: &mut Document) {
    let Some(RefOr::T(Schema::Object(statement))) = doc
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("CapabilityStatement"))
    else {
        return;
    };
    let describe = |member: &str, shape: Value| -> RefOr<Schema> {
        let mut shape = shape;
        shape["description"] = member_description(statement, member);
        schema(shape)
    };
    let open = |properties: Value, required: &[&str]| json!({"type": "object", "required": required, "properties": properties, "additionalProperties": true});
    let text = json!({"type": "string"});
    let software = describe(
        "software",
        open(json!({"name": text, "version": text}), &["name", "version"]),
    );
    let implementation = describe("implementation", open(json!({"description": text}), &["description"]));
    let any = json!({"type": "object", "additionalProperties": true});
    let rest = describe(
        "rest",
        json!({
            "type": "array",
            "items": open(
                json!({"mode": text, "security": any, "resource": {"type": "array", "items": open(json!({"type": text}), &["type"])}}),
                &["mode", "resource"],
            ),
        }),
    );
    statement.properties.insert("software".to_owned(), software);
    statement.properties.insert("implementation".to_owned(), implementation);
    statement.properties.insert("rest".to_owned(), rest);
}

/// A query filter over a fixed value set refers to the value set's named schema, as members do:
/// written inline, generators made a second type of each (`ListClaimsStatus` beside
/// `ClaimStatus`), and passing a claim's `status` to the filter was a type error. The CSV
/// separators, a set of their own, get a name too.
pub(super) fn query_value_sets_by_reference(doc: &mut Document) {
    use utoipa::openapi::path::ParameterIn;
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let separator = schema(json!({
        "type": "string",
        "description": "How the cells of a CSV answer are separated: `comma` (`,`) or `semicolon` (`;`, as a spreadsheet in a French locale reads them).",
        "enum": ["comma", "semicolon"],
    }));
    components.schemas.insert("CsvSeparator".to_owned(), separator);
    let value_set = |schema: &RefOr<Schema>| -> Option<Vec<String>> {
        let form = serde_json::to_value(schema).ok()?;
        let mut values: Vec<String> = form
            .get("enum")?
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()?;
        values.sort();
        Some(values)
    };
    let named: Vec<(String, Vec<String>)> = components
        .schemas
        .iter()
        .filter_map(|(name, schema)| Some((name.clone(), value_set(schema)?)))
        .collect();
    let reads = doc.paths.paths.values_mut().filter_map(|item| item.get.as_mut());
    for parameter in reads.flat_map(|op| op.parameters.iter_mut().flatten()) {
        if parameter.parameter_in != ParameterIn::Query {
            continue;
        }
        let Some(values) = parameter.schema.as_ref().and_then(value_set) else {
            continue;
        };
        if let Some((name, _)) = named.iter().find(|(_, v)| *v == values) {
            parameter.schema = Some(RefOr::Ref(Ref::from_schema_name(name.as_str())));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn walk<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
        match value {
            Value::Object(members) => {
                out.push((at.clone(), value));
                for (key, member) in members {
                    walk(member, format!("{at}/{key}"), out);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    /// What stopped the generators: forms with members typed `null`, `null` inside an `enum`, a
    /// PATCH body under two media types, an upload typed as a JSON string, a request body that is
    /// an object with no member, a list's items copied rather than referred to.
    #[test]
    fn the_document_avoids_what_stopped_generators() {
        let doc = serde_json::to_value(super::super::document()).unwrap();
        let mut all = Vec::new();
        walk(&doc, String::new(), &mut all);
        for (at, schema) in &all {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (name, property) in properties {
                    assert_ne!(property, &serde_json::json!({"type": "null"}), "{at}/properties/{name}");
                }
            }
            if let Some(values) = schema.get("enum").and_then(Value::as_array) {
                assert!(!values.contains(&Value::Null), "{at}: null in an enum");
            }
            assert!(
                schema.get("unevaluatedProperties").is_none(),
                "{at}: generators ignore it"
            );
        }
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let Some(content) = op["requestBody"]["content"].as_object() else {
                    continue;
                };
                if method == "patch" {
                    assert_eq!(content.len(), 1, "{method} {path}: one media type");
                }
                for (media_type, body) in content {
                    let schema = &body["schema"];
                    if schema["type"] == "object" {
                        assert!(
                            schema.get("properties").is_some() || schema.get("additionalProperties").is_some(),
                            "{method} {path} {media_type}: an object with no member"
                        );
                    }
                    if !media_type.ends_with("json") {
                        assert_eq!(schema["format"], "binary", "{method} {path} {media_type}");
                    }
                }
            }
        }
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for (name, schema) in schemas {
            if let Some(item) = name.strip_prefix("ListOf_") {
                assert_eq!(
                    schema["properties"]["items"]["items"]["$ref"],
                    format!("#/components/schemas/{item}"),
                    "{name}"
                );
                // Always sent, null on the last page.
                assert!(
                    schema["required"].as_array().unwrap().contains(&"next_cursor".into()),
                    "{name}"
                );
            }
        }
        // A member left out when it has no value is never null when sent; one always sent, null
        // when it has none, is required.
        let claim = &schemas["ClaimView"];
        assert_eq!(claim["properties"]["settlement"]["type"], "string");
        for member in ["base_payer", "routed_to"] {
            assert!(
                claim["required"].as_array().unwrap().contains(&member.into()),
                "{member}"
            );
        }
    }
}
