//! A bulk job's whole report: every row error a page at a time, every possible duplicate, and
//! the report as one CSV file, as `passerelle import` writes it.

use passerelle_adapters::Backend;
use passerelle_tests::{on_both_databases, Reply, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::batches::{counts, run, CSV, HEADER};
use crate::registry::{register, registry, writer};

/// Households of one row each: every tenth is good, the others fail on their `sex`; then one
/// whose household key a spreadsheet would run as a formula, failing on its birth date; then one
/// that looks like a person already registered.
fn file(households: usize) -> (Vec<u8>, Vec<u64>) {
    let mut text = format!("{HEADER}\n");
    let mut failing_rows = Vec::new();
    for i in 0..households {
        let sex = if i % 10 == 0 { "M" } else { "X" };
        if sex == "X" {
            failing_rows.push(i as u64 + 2);
        }
        text.push_str(&format!(
            "B{i},principal,BIG-{i},Amégbé,Kossi {i},{sex},1980,,,Maritime,Zio,Zio 1,2026-01-01,\n"
        ));
    }
    text.push_str("=1+2,principal,BIG-F,Mensah,Adjoa,F,2090-01-01,,,,,,2026-01-01,\n");
    failing_rows.push(households as u64 + 2);
    text.push_str("L1,principal,BIG-L,KPELAFIA,elom,M,1990-04-02,,,,,,2026-01-01,\n");
    (text.into_bytes(), failing_rows)
}

async fn get_with(app: &TestApp, path: &str, token: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = app.request(Method::GET, path).bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    app.send(request).await
}

/// The cells of one line of a CSV file separated by `separator`, quotes undone (RFC 4180).
fn cells(line: &str, separator: char) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cells.last_mut().unwrap().push('"');
            }
            '"' => quoted = !quoted,
            c if c == separator && !quoted => cells.push(String::new()),
            c => cells.last_mut().unwrap().push(c),
        }
    }
    cells
}

async fn every_error_is_read_by_page_and_as_one_csv_report(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let solo = json!({"product": r.product, "member_number": "SOLO-1", "start_date": "2026-01-01",
        "principal": {"family_name": "Kpélafia", "given_names": "Élom", "sex": "M", "birth_date": "1990-04-02"}});
    let registered = register(app, "mut-a", "solo", &solo).await;
    assert_eq!(registered.status.as_u16(), 201, "{}", registered.text);

    let (body, failing_rows) = file(1300);
    let query = format!("?product={}", r.product);
    let job = run(app, "mut-a", "k1", &query, CSV, body).await;
    let failed = failing_rows.len() as i64;
    assert_eq!(failed, 1171);
    assert_eq!(
        counts(&job),
        [1302, 1302 - failed, 0, failed, failed],
        "{}",
        job["status"]
    );
    assert_eq!(
        job["errors"].as_array().unwrap().len(),
        1000,
        "the job itself lists the first 1000"
    );
    assert_eq!(job["possible_duplicates_total"], 1);
    let id = job["id"].as_str().unwrap();
    let errors_path = format!("/v1/registrations/batches/{id}/errors");
    let token = writer(app, "mut-a");

    // Page by page, every error once, by row; the first 1000 are the job's own.
    let mut items: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => format!("{errors_path}?limit=500"),
            Some(c) => format!("{errors_path}?limit=500&cursor={c}"),
        };
        let page = app.get(&path, &token).await;
        assert_eq!(page.status.as_u16(), 200, "{}", page.text);
        assert_eq!(page.header("vary"), Some("Accept"));
        assert_eq!(page.header("cache-control"), Some("private, no-store"));
        items.extend(page.json["items"].as_array().unwrap().iter().cloned());
        pages += 1;
        match page.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let rows: Vec<u64> = items.iter().map(|e| e["row"].as_u64().unwrap()).collect();
    assert_eq!(rows, failing_rows, "each failing row once, by row");
    assert_eq!(&items[..1000], job["errors"].as_array().unwrap().as_slice());
    let last = items.last().unwrap();
    assert_eq!(
        (&last["household"], &last["field"]),
        (&json!("=1+2"), &json!("birth_date"))
    );

    let duplicates = app
        .get(&format!("/v1/registrations/batches/{id}/possible-duplicates"), &token)
        .await;
    assert_eq!(duplicates.status.as_u16(), 200, "{}", duplicates.text);
    assert_eq!(duplicates.json["items"], job["possible_duplicates"]);
    assert_eq!(duplicates.json["items"][0]["row"], 1303);
    assert_eq!(duplicates.json["next_cursor"], Value::Null);

    // The whole report as one CSV file, in English, separated by semicolons: the errors, then
    // the possible duplicate, by row, each error as the JSON list gives it.
    let report = get_with(
        app,
        &format!("{errors_path}?separator=semicolon"),
        &token,
        &[("accept", "text/csv"), ("accept-language", "en")],
    )
    .await;
    assert_eq!(report.status.as_u16(), 200, "{}", report.text);
    assert_eq!(report.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(report.header("vary"), Some("Accept"));
    assert_eq!(
        report.header("content-disposition").unwrap(),
        format!("attachment; filename=\"registration-batch-{id}-errors.csv\"")
    );
    let text = report.text.strip_prefix('\u{FEFF}').expect("a byte order mark first");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "row;household;field;code;message");
    assert_eq!(
        lines.len(),
        1 + failing_rows.len() + 1,
        "the header, every error, the duplicate"
    );
    let english = get_with(
        app,
        &format!("{errors_path}?limit=500"),
        &token,
        &[("accept-language", "en")],
    )
    .await;
    for (line, item) in lines[1..].iter().zip(english.json["items"].as_array().unwrap()) {
        let row = item["row"].to_string();
        let expected = [
            row.as_str(),
            item["household"].as_str().unwrap(),
            item["field"].as_str().unwrap(),
            item["code"].as_str().unwrap(),
            item["message"].as_str().unwrap(),
        ];
        assert_eq!(cells(line, ';'), expected, "{line}");
    }
    let formula = cells(lines[lines.len() - 2], ';');
    assert_eq!(formula[1], "'=1+2", "a key a spreadsheet would run is written as text");
    let duplicate = cells(lines[lines.len() - 1], ';');
    assert_eq!(duplicate[..4], ["1303", "L1", "family_name", "possible_duplicate"]);
    let created = job["possible_duplicates"][0]["beneficiary"].as_str().unwrap();
    let stored = registered.json["members"][0]["beneficiary"]["id"].as_str().unwrap();
    assert!(
        duplicate[4].contains(created) && duplicate[4].contains(stored),
        "{}",
        duplicate[4]
    );
    // In French by default, separated as the file was (with commas); `limit` and `cursor` are
    // not read.
    let french = get_with(
        app,
        &format!("{errors_path}?limit=abc&cursor=xyz"),
        &token,
        &[("accept", "text/csv")],
    )
    .await;
    assert_eq!(french.status.as_u16(), 200, "{}", french.text);
    assert!(french.text.starts_with("\u{FEFF}row,household,field,code,message\n"));
    assert!(french.text.contains("qui ressemble à"), "{}", &french.text[..200]);
    assert_eq!(french.text.lines().count(), lines.len());
    assert!(!french.text.contains("report_truncated"), "every error was kept");

    // A report that lists fewer errors than the job found (a job of an earlier release kept the
    // first 1,000; one past the 100,000 a job keeps) says so on its last line, in its language.
    app.db
        .execute(&format!(
            "DELETE FROM registration_batch_errors WHERE batch = '{id}' AND seq > 1000"
        ))
        .await;
    let cut = get_with(
        app,
        &errors_path,
        &token,
        &[("accept", "text/csv"), ("accept-language", "en")],
    )
    .await;
    let last = cut.text.lines().last().unwrap();
    assert_eq!(cells(last, ',')[..4], ["", "", "", "report_truncated"], "{last}");
    assert!(
        last.contains("found 1171 errors and 1 possible duplicates; this report lists 1000 and 1 of them"),
        "{last}"
    );
    assert_eq!(
        cut.text.lines().count(),
        1 + 1000 + 1 + 1,
        "header, errors kept, duplicate, the notice"
    );

    // `separator` is not part of the list: a page asked with it continues without it.
    let with = app
        .get(&format!("{errors_path}?limit=2&separator=semicolon"), &token)
        .await;
    let cursor = with.json["next_cursor"].as_str().unwrap();
    let next = app.get(&format!("{errors_path}?limit=2&cursor={cursor}"), &token).await;
    assert_eq!(next.status.as_u16(), 200, "{}", next.text);
    assert_eq!(next.json["items"][0]["row"], items[2]["row"]);

    // Bad pages are 422, naming the parameter; a cursor of another list is refused.
    let field = |reply: &Reply| reply.problem(422, "validation_failed")["errors"][0]["field"].clone();
    assert_eq!(
        field(&app.get(&format!("{errors_path}?limit=0"), &token).await),
        "/query/limit"
    );
    assert_eq!(
        field(&app.get(&format!("{errors_path}?separator=tab"), &token).await),
        "/query/separator"
    );
    let again = run(app, "mut-a", "k2", &query, CSV, file(1300).0).await;
    let list = app.get("/v1/registrations/batches?limit=1", &token).await;
    assert_eq!(list.status.as_u16(), 200);
    let other_page = app
        .get(
            &format!(
                "/v1/registrations/batches/{}/errors?limit=1",
                again["id"].as_str().unwrap()
            ),
            &token,
        )
        .await;
    for foreign in [
        other_page.json["next_cursor"].as_str().unwrap(),
        list.json["next_cursor"].as_str().unwrap(),
        // An unbound cursor of the first releases, whose key is not a place in a report.
        "c1616263",
    ] {
        let refused = app.get(&format!("{errors_path}?cursor={foreign}"), &token).await;
        assert_eq!(field(&refused), "/query/cursor", "{foreign}");
        let refused = app
            .get(
                &format!("/v1/registrations/batches/{id}/possible-duplicates?cursor={foreign}"),
                &token,
            )
            .await;
        assert_eq!(field(&refused), "/query/cursor", "{foreign}");
    }

    // Readable as the job is: another mutuelle gets 404, an auditor reads and is audited.
    for path in [
        &errors_path,
        &format!("/v1/registrations/batches/{id}/possible-duplicates"),
    ] {
        app.get(path, &writer(app, "mut-b")).await.problem(404, "not_found");
        app.get(path, &app.token("mut-a", "registry:write"))
            .await
            .problem(403, "forbidden");
        let audited = app.audited().await;
        let seen = app.get(path, &app.token("audit-x", "registry:read")).await;
        assert_eq!(seen.status.as_u16(), 200, "{}", seen.text);
        assert_eq!(app.audited().await, audited + 1, "an auditor's read is audited");
    }
    app.get("/v1/registrations/batches/nope/errors", &token)
        .await
        .problem(404, "not_found");
    let csv_404 = get_with(
        app,
        "/v1/registrations/batches/nope/errors",
        &token,
        &[("accept", "text/csv")],
    )
    .await;
    csv_404.problem(404, "not_found");
}

/// A file separated by semicolons, as a spreadsheet in a French locale saves it, gets its report
/// separated the same way, unless the caller asks for commas.
async fn a_report_keeps_its_files_separator(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let text = format!(
        "{}\nS1;principal;SEP-1;Mensah;Adjoa;X;1979;;;;;;2026-01-01;\n",
        HEADER.replace(',', ";")
    );
    let job = run(
        app,
        "mut-a",
        "k1",
        &format!("?product={}", r.product),
        CSV,
        text.into_bytes(),
    )
    .await;
    assert_eq!(job["errors_total"], 1, "{job}");
    let errors_path = format!("/v1/registrations/batches/{}/errors", job["id"].as_str().unwrap());
    let token = writer(app, "mut-a");
    let csv = |path: String| {
        let token = token.clone();
        async move { get_with(app, &path, &token, &[("accept", "text/csv")]).await.text }
    };
    let own = csv(errors_path.clone()).await;
    assert!(
        own.starts_with("\u{FEFF}row;household;field;code;message\n2;S1;sex;"),
        "{own}"
    );
    let commas = csv(format!("{errors_path}?separator=comma")).await;
    assert!(
        commas.starts_with("\u{FEFF}row,household,field,code,message\n2,S1,sex,"),
        "{commas}"
    );
    // JSON lines have no separator: commas.
    let line = json!({"product": r.product, "member_number": "SEP-2", "start_date": "2026-01-01",
        "principal": {"family_name": "Mensah", "given_names": "Ama", "sex": "X", "birth_date": "1979"}});
    let job = run(
        app,
        "mut-a",
        "k2",
        "",
        "application/x-ndjson",
        format!("{line}\n").into_bytes(),
    )
    .await;
    assert_eq!(job["errors_total"], 1, "{job}");
    let lines = csv(format!(
        "/v1/registrations/batches/{}/errors",
        job["id"].as_str().unwrap()
    ))
    .await;
    assert!(
        lines.starts_with("\u{FEFF}row,household,field,code,message\n1,SEP-2,"),
        "{lines}"
    );
}

on_both_databases!(
    every_error_is_read_by_page_and_as_one_csv_report,
    a_report_keeps_its_files_separator,
);
