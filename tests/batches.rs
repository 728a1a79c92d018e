//! Bulk registration (API.md §5 Registrations, Bulk).

use std::time::Duration;

use passerelle_adapters::testing::TestDatabase;
use passerelle_adapters::Backend;
use passerelle_api::app;
use passerelle_tests::{on_both_databases, test_config, tokens, Reply, TestApp, SECRET};
use reqwest::Method;
use serde_json::{json, Value};

use crate::products::family_plan;
use crate::registry::{household, register, registry, writer};

pub const HEADER: &str = "household,relationship,member_number,family_name,given_names,sex,birth_date,national_id,phone,region,district,commune,start_date,paid_through";
pub const CSV: &str = "text/csv";
const NDJSON: &str = "application/x-ndjson";

/// Posts a file to `/v1/registrations/batches{query}`.
pub async fn upload(
    app: &TestApp,
    org: &str,
    key: Option<&str>,
    query: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> Reply {
    let mut request = app
        .request(Method::POST, &format!("/v1/registrations/batches{query}"))
        .bearer_auth(writer(app, org))
        .header("content-type", content_type)
        .body(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    app.send(request).await
}

/// Polls the job until it ends (a minute at most).
pub async fn finished(app: &TestApp, org: &str, location: &str) -> Value {
    for _ in 0..600 {
        let reply = app.get(location, &writer(app, org)).await;
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
        if matches!(reply.json["status"].as_str(), Some("completed" | "failed")) {
            return reply.json;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the job at {location} did not finish");
}

/// Uploads, expects 202, and waits for the end.
pub async fn run(app: &TestApp, org: &str, key: &str, query: &str, content_type: &str, body: Vec<u8>) -> Value {
    let reply = upload(app, org, Some(key), query, content_type, body).await;
    assert_eq!(reply.status.as_u16(), 202, "{}", reply.text);
    let location = reply.header("location").unwrap().to_owned();
    finished(app, org, &location).await
}

pub fn counts(job: &Value) -> [i64; 5] {
    [
        "rows_processed",
        "households_created",
        "households_skipped",
        "rows_failed",
        "errors_total",
    ]
    .map(|k| job[k].as_i64().unwrap_or(-1))
}

pub fn codes(job: &Value) -> Vec<(u64, String, String)> {
    job["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap(),
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub fn csv(rows: &[&str]) -> Vec<u8> {
    let mut text = format!("{HEADER}\n");
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    text.into_bytes()
}

/// A name made of letters only, different for each `i`.
fn name(i: usize) -> String {
    let mut n = i;
    let mut s = String::from("K");
    loop {
        s.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
        if n == 0 {
            break;
        }
    }
    s
}

/// `n` households of a principal and a child, without national ids.
pub fn households(n: usize, prefix: &str) -> Vec<u8> {
    let mut text = format!("{HEADER}\n");
    for i in 0..n {
        let family = name(i);
        text.push_str(&format!(
            "H{i},principal,{prefix}-{i},{family},Kossi,M,1980,,,Maritime,Zio,Zio 1,2026-01-01,2026-12-31\n\
             H{i},child,,{family},Ama,F,2015-05-0{},,,,,,,\n",
            1 + i % 9
        ));
    }
    text.into_bytes()
}

pub const GOOD: [&str; 4] = [
    "H1,principal,TSV-1001,Agbéko,Kossi,M,1984-03-12,TG:NIU:1234 5678 9012,+22890123456,Maritime,Zio,Zio 1,2026-01-01,2026-12-31",
    "H1,spouse,,Agbéko,Akossiwa Élise,F,1988,,,Maritime,Zio,Zio 1,,",
    "H1,child,,Agbéko,Yao,M,2015-07-30,,,,,,,",
    "H2,principal,TSV-1002,Mensah,Adjoa,F,1979,,,Plateaux,Ogou,Ogou 1,2026-01-01,",
];

async fn a_csv_file_with_its_columns_in_any_order_completes(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    // The columns reversed, a household that fails on a rule, and one more good one.
    let reversed = |row: &str| row.split(',').rev().collect::<Vec<_>>().join(",");
    let mut text = format!("{}\n", reversed(HEADER));
    for row in GOOD
        .iter()
        .chain(&["H3,principal,TSV-1003,Koffi,Edem,X,1990,,,,,,2026-01-01,"])
    {
        text.push_str(&reversed(row));
        text.push('\n');
    }
    let query = format!("?product={}", r.product);
    let reply = upload(app, "mut-a", Some("k1"), &query, CSV, text.clone()).await;
    assert_eq!(reply.status.as_u16(), 202, "{}", reply.text);
    let id = reply.json["id"].as_str().unwrap().to_owned();
    let location = format!("/v1/registrations/batches/{id}");
    assert_eq!(reply.header("location"), Some(location.as_str()));
    assert_eq!(reply.json["status"], "queued");
    assert_eq!(reply.json["organization"], "mut-a");
    assert_eq!(reply.json["errors"], json!([]));

    let job = finished(app, "mut-a", &location).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["rows_total"], 5);
    assert_eq!(counts(&job), [5, 2, 0, 1, 1]);
    assert_eq!(codes(&job), [(6, "sex".to_owned(), "unknown_value".to_owned())]);
    assert_eq!(job["errors"][0]["household"], "H3");
    assert!(job["finished_at"].is_string());
    assert_eq!(app.count("coverages").await, 4);
    // Names byte-exact, the year-only birth date as a year.
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM beneficiaries WHERE given_names = 'Akossiwa Élise' AND birth_date_precision = 'year'")
            .await,
        1
    );
    // Messages follow Accept-Language.
    let en = app
        .send(
            app.request(Method::GET, &location)
                .bearer_auth(writer(app, "mut-a"))
                .header("accept-language", "en"),
        )
        .await;
    assert_eq!(en.json["errors"][0]["message"], "must be F or M", "{}", en.text);
    assert_ne!(en.json["errors"][0]["message"], job["errors"][0]["message"]);

    // The same key, query and body: the first 202 again, no new job; another body: refused.
    let again = upload(app, "mut-a", Some("k1"), &query, CSV, text.clone()).await;
    assert_eq!(again.status.as_u16(), 202);
    assert_eq!(again.json, reply.json);
    assert_eq!(again.header("location"), Some(location.as_str()));
    assert_eq!(app.count("registration_batches").await, 1);
    upload(app, "mut-a", Some("k1"), &query, CSV, format!("{text}\n"))
        .await
        .problem(422, "idempotency_key_reused");
    // A reused key is told so before its query or file is judged (API.md §3); the same bytes
    // sent as another format are another request.
    let bad_header = "household,relation,member_number\nH1,principal,X-1\n".to_owned();
    for (query, media, body) in [
        ("?product=nothing", CSV, text.clone()),
        ("", CSV, text.clone()),
        (query.as_str(), CSV, bad_header),
        (query.as_str(), NDJSON, text.clone()),
    ] {
        upload(app, "mut-a", Some("k1"), query, media, body)
            .await
            .problem(422, "idempotency_key_reused");
    }
    // A CSV file sent as JSON lines is refused whole, not read line by line as bad JSON.
    let mislabelled = upload(app, "mut-a", Some("k-nd"), "", NDJSON, text.clone()).await;
    assert_eq!(
        mislabelled.field_codes(),
        [("/body".to_owned(), "not_json_lines".to_owned())]
    );
    assert_eq!(app.count("registration_batches").await, 1);

    // The same file under a new key: every household that registered is skipped.
    let job = run(app, "mut-a", "k2", &query, CSV, text.clone().into_bytes()).await;
    assert_eq!(job["status"], "completed");
    assert_eq!(counts(&job), [5, 0, 2, 1, 1]);
    assert_eq!(app.count("coverages").await, 4);
    assert_eq!(app.count("beneficiaries").await, 4);
    // Saved by a spreadsheet in a French locale, separated by semicolons: read the same.
    let semicolons = text.replace(',', ";");
    let job = run(app, "mut-a", "k2b", &query, CSV, semicolons.into_bytes()).await;
    assert_eq!(counts(&job), [5, 0, 2, 1, 1], "{job}");
    assert_eq!(codes(&job), [(6, "sex".to_owned(), "unknown_value".to_owned())]);

    // A person already covered by the product, under another member number, in a later upload.
    let twice = csv(&["H9,principal,TSV-1009,Agbéko,Kossi,M,1984-03-12,TG:NIU:123456789012,,,,,2026-01-01,"]);
    let job = run(app, "mut-a", "k3", &query, CSV, twice).await;
    assert_eq!(codes(&job), [(2, String::new(), "already_covered".to_owned())]);
    assert_eq!(app.count("coverages").await, 4);
}

async fn a_bad_header_or_query_creates_nothing(backend: Backend) {
    let spool = std::env::temp_dir().join(format!("passerelle-spool-{}", uuid::Uuid::now_v7().simple()));
    let app = &TestApp::spawn_with(backend, |c| c.batch_spool_dir = spool.clone()).await;
    for (id, kind) in [("mut-a", "mutuelle"), ("mut-b", "mutuelle"), ("tg-inam", "scheme")] {
        app.create_org(id, kind, "TG").await;
    }
    let plan = app
        .post("/v1/products", &writer(app, "mut-a"), &family_plan("2026-01-01"))
        .await;
    let query = format!("?product={}", plan.json["id"].as_str().unwrap());
    let header = HEADER.replace(",phone,", ",telephone,").replace(",paid_through", "");
    let body = format!("{header}\nH1,principal,TSV-1,Ba,Awa,F,1980,,,,,,2026-01-01\n");
    let reply = upload(app, "mut-a", Some("k1"), &query, CSV, body).await;
    reply.problem(422, "validation_failed");
    let mut fields = reply.error_fields();
    fields.sort();
    assert_eq!(fields, ["/header/paid_through", "/header/phone", "/header/telephone"]);
    // A file saved without its header row: one error for the first line, which repeats none of
    // its cells (a name, a national id, a phone number).
    let headless = "H1,principal,TSV-1,Amégbé,Kodjo,M,1980,TG:NIU:900000000101,+22890000101,,,,2026-01-01,\n";
    let reply = upload(app, "mut-a", Some("k0"), &query, CSV, headless.to_owned()).await;
    assert_eq!(reply.field_codes(), [("/header".to_owned(), "no_header".to_owned())]);
    for cell in ["Amégbé", "Kodjo", "900000000101", "+22890000101"] {
        assert!(!reply.text.contains(cell), "{cell} in {}", reply.text);
    }

    let good = csv(&GOOD);
    upload(app, "mut-a", Some("k2"), "", CSV, good.clone())
        .await
        .problem(422, "validation_failed");
    let reply = upload(app, "mut-a", Some("k2"), "", CSV, good.clone()).await;
    assert_eq!(reply.error_fields(), ["/query/product"]);
    assert_eq!(reply.json["errors"][0]["code"], "required");
    // `?product=` with nothing after it names no product either.
    let reply = upload(app, "mut-a", Some("k2"), "?product=", CSV, good.clone()).await;
    assert_eq!(
        reply.field_codes(),
        [("/query/product".to_owned(), "required".to_owned())]
    );
    // An empty file has no header: one error, not fourteen missing columns.
    let reply = upload(app, "mut-a", Some("k4"), &query, CSV, String::new()).await;
    assert_eq!(reply.field_codes(), [("/header".to_owned(), "no_header".to_owned())]);
    // Another mutuelle's product is not a reference it may use.
    let reply = upload(app, "mut-b", Some("k2"), &query, CSV, good.clone()).await;
    reply.problem(422, "validation_failed");
    assert_eq!(reply.json["errors"][0]["field"], "/query/product");
    assert_eq!(reply.json["errors"][0]["code"], "unknown_reference");
    let refused = upload(app, "mut-a", Some("k3"), &query, "application/json", good.clone()).await;
    refused.problem(415, "unsupported_media_type");
    assert_eq!(
        refused.json["detail"],
        "Envoyez le corps en text/csv ou application/x-ndjson."
    );
    let latin = upload(
        app,
        "mut-a",
        Some("k3"),
        &query,
        "text/csv; charset=iso-8859-1",
        good.clone(),
    )
    .await;
    latin.problem(415, "unsupported_media_type");
    let detail = latin.json["detail"].as_str().unwrap();
    assert!(detail.contains("UTF-8") && detail.contains("CSV UTF-8"), "{detail}");
    // `utf8` is UTF-8: the header is judged (and refused), not the charset.
    upload(
        app,
        "mut-a",
        Some("k3"),
        &query,
        "text/csv; charset=utf8",
        format!("{header}\n"),
    )
    .await
    .problem(422, "validation_failed");
    upload(app, "mut-a", None, &query, CSV, good.clone())
        .await
        .problem(428, "precondition_required");
    // Only mutuelles register.
    let scheme = app
        .send(
            app.request(Method::POST, &format!("/v1/registrations/batches{query}"))
                .bearer_auth(writer(app, "tg-inam"))
                .header("idempotency-key", "k4")
                .header("content-type", CSV)
                .body(good),
        )
        .await;
    scheme.problem(403, "forbidden");
    assert_eq!(app.count("registration_batches").await, 0);
    assert_eq!(app.count("coverages").await, 0);
    let spooled = std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0);
    assert_eq!(spooled, 0, "no upload is left behind");
    let _ = std::fs::remove_dir_all(&spool);
}

async fn a_bad_line_fails_its_household_only(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let mut body = csv(&GOOD);
    // A row with a field too many, a member number held by another person of the same file,
    // and a last line cut short. (A line not in UTF-8 fails the whole file: below.)
    body.extend_from_slice(b"H5,principal,TSV-1005,Diallo,Mariama,F,1990,,,,,,2026-01-01,,extra\n");
    body.extend_from_slice("H6,principal,TSV-1001,Sow,Ousmane,M,1970,,,,,,2026-01-01,\n".as_bytes());
    // H1's principal again (the same national id) under another number: already covered.
    body.extend_from_slice(
        "H8,principal,TSV-1008,Agbéko,Kossi,M,1984-03-12,TG:NIU:123456789012,,,,,2026-01-01,\n".as_bytes(),
    );
    body.extend_from_slice("H7,principal,TSV-1007,Ndiaye,Fatou,F,1985,,,,,,2026-01-01,\n".as_bytes());
    body.extend_from_slice("H7,child,,Ndiaye,Mo".as_bytes());
    let job = run(app, "mut-a", "k1", &format!("?product={}", r.product), CSV, body).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        codes(&job),
        [
            (6, String::new(), "wrong_field_count".to_owned()),
            (7, "member_number".to_owned(), "member_number_taken".to_owned()),
            (8, String::new(), "already_covered".to_owned()),
            (10, String::new(), "truncated".to_owned()),
        ]
    );
    assert_eq!(job["rows_total"], 9);
    // H1 (3 rows) and H2 register; H5, H6, H8 (1 row each) and H7 (2 rows) fail whole.
    assert_eq!(counts(&job), [9, 2, 0, 5, 4]);
    assert_eq!(app.count("coverages").await, 4);
}

/// A spreadsheet's "CSV" in Windows-1252: `É` then a no-break space (`C9 A0`) happens to be
/// valid UTF-8 (`ɠ`), `é` alone (`E9`) is not. The file is not UTF-8, so nothing of it is
/// registered, not even the line that reads as UTF-8 with a garbled name; saved as UTF-8, it
/// registers whole.
async fn a_file_not_in_utf8_registers_nothing(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let query = format!("?product={}", r.product);
    let mut latin = csv(&[]);
    latin.extend_from_slice(b"H1,principal,TSV-3001,KONAT\xC9\xA0,Siaka,M,1968,,,,,,2026-01-01,\r\n");
    latin.extend_from_slice(b"H2,principal,TSV-3002,Traor\xE9,Awa,F,1975,,,S\xE9gou,San,S\xE9gou,2026-01-01,\r\n");
    let job = run(app, "mut-a", "k1", &query, CSV, latin).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["failure"]["code"], "invalid_encoding", "{job}");
    let message = job["failure"]["message"].as_str().unwrap();
    assert!(
        message.contains(" 3 ") && message.contains("UTF-8"),
        "the line, in either language: {message}"
    );
    assert_eq!(app.count("coverages").await, 0, "nothing of a file not in UTF-8");
    assert_eq!(app.count("beneficiaries").await, 0);

    let utf8 = csv(&[
        "H1,principal,TSV-3001,KONATÉ,Siaka,M,1968,,,,,,2026-01-01,",
        "H2,principal,TSV-3002,Traoré,Awa,F,1975,,,Ségou,San,Ségou,2026-01-01,",
    ]);
    let job = run(app, "mut-a", "k2", &query, CSV, utf8).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(counts(&job), [2, 2, 0, 0, 0]);
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM beneficiaries WHERE family_name IN ('KONATÉ', 'Traoré')")
            .await,
        2
    );
}

/// What a spreadsheet mangles in a UTF-8 file fails its household, never to be stored as a
/// name for good: accents garbled by a round trip through Windows-1252, a formula's error.
async fn mangled_cells_fail_their_household(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let body = csv(&[
        "H1,principal,TSV-4001,KpÃ©lafia,AÃ¯ssata,F,1975,,,,,,2026-01-01,",
        "H2,principal,TSV-4002,Attiogbé,#N/A,M,1972,,,Maritime,#NAME?,Tsévié,2026-01-01,",
        "H3,principal,TSV-4003,Kpélafia,Aïssata,F,1975,,,,,,2026-01-01,",
        // A number cell lost the phone's +; a French-locale date.
        "H4,principal,TSV-4004,Mensah,Kodjo,M,02/03/1965,,22890000101,,,,2026-01-01,",
    ]);
    let job = run(app, "mut-a", "k1", &format!("?product={}", r.product), CSV, body).await;
    assert_eq!(job["status"], "completed", "{job}");
    let code = |field: &str, code: &str| (field.to_owned(), code.to_owned());
    let found: Vec<(String, String)> = codes(&job).into_iter().map(|(_, f, c)| (f, c)).collect();
    assert_eq!(
        found,
        [
            code("family_name", "garbled_characters"),
            code("given_names", "garbled_characters"),
            code("given_names", "spreadsheet_error"),
            code("district", "spreadsheet_error"),
            code("birth_date", "invalid_date"),
            code("phone", "invalid_phone"),
        ],
        "{job}"
    );
    // What the spreadsheet did is said, in either language, without the value.
    let message = |code: &str| {
        job["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["code"] == code)
            .and_then(|e| e["message"].as_str())
            .unwrap()
            .to_owned()
    };
    let date = message("invalid_date");
    assert!(date.contains("DD/MM/YYYY") || date.contains("JJ/MM/AAAA"), "{date}");
    assert!(!date.contains("1965"), "{date}");
    let phone = message("invalid_phone");
    assert!(phone.contains("+228…"), "{phone}");
    assert!(!phone.contains("22890000101"), "{phone}");
    assert_eq!(counts(&job)[1], 1, "H3 alone: {job}");
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM beneficiaries WHERE family_name LIKE '%Ã%' OR given_names LIKE '#%'")
            .await,
        0
    );
}

/// A file as a French-locale spreadsheet exports it: semicolons, a byte order mark, CRLF, empty
/// columns the sheet once used beyond the table, codes capitalised by AutoCorrect, a place typed
/// over two lines (Alt+Enter) and a national id column typed as numbers. Every row keeps the
/// number the clerk sees in the spreadsheet.
async fn a_french_spreadsheet_export_reads_as_the_clerk_sees_it(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let mut body = format!("\u{FEFF}{};;\r\n", HEADER.replace(',', ";"));
    for row in [
        "H1;Principal;TSV-5001;Agbéko;Kossi;m;1984;;;Maritime;Zio;Zio 1;2026-01-01;;;",
        "H1;Child;;Agbéko;Yao;M;2015;;;;;;;;;",
        "H2;principal;TSV-5002;Mensah;Adjoa;F;1979;;;Plateaux;Ogou;\"Atakpamé\nnord\";2026-01-01;;;",
        "H3;principal;TSV-5003;Dossou;Afi;F;1982;123456789012;;;;;2026-01-01;;;",
        "H4;principal;TSV-5004;Sow;Ali;M;1980;;;;;;2026-01-01;;;vu",
        "H5;principal;TSV-5005;Ba;Awa;F;1990;;;;;;2026-01-01;;;",
    ] {
        body.push_str(row);
        body.push_str("\r\n");
    }
    let job = run(
        app,
        "mut-a",
        "k1",
        &format!("?product={}", r.product),
        CSV,
        body.into_bytes(),
    )
    .await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        codes(&job),
        [
            (4, "commune".to_owned(), "line_break_in_cell".to_owned()),
            (5, "national_id".to_owned(), "invalid_national_id".to_owned()),
            (6, String::new(), "unnamed_column".to_owned()),
        ],
        "{job}"
    );
    assert_eq!(job["rows_total"], 6);
    // H1 (2 rows) and H5 registered; H2, H3 and H4 failed.
    assert_eq!(counts(&job), [6, 2, 0, 3, 3]);
    let message = |i: usize| job["errors"][i]["message"].as_str().unwrap().to_owned();
    assert!(message(1).contains("PAYS:TYPE:VALEUR"), "{}", message(1));
    assert!(message(2).contains("colonne P"), "{}", message(2));
    assert!(!message(2).contains("vu"), "{}", message(2));
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM coverages WHERE relationship = 'child' AND member_number = 'TSV-5001'")
            .await,
        1
    );
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM beneficiaries WHERE family_name = 'Agbéko' AND sex = 'M'")
            .await,
        2
    );
}

/// A household whose rows are split by another's is registered whole or not at all: none of its
/// runs is, and once the file is fixed, posting it again registers it whole.
async fn a_split_household_is_registered_whole_or_not_at_all(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let query = format!("?product={}", r.product);
    let h2 = "H2,principal,TSV-2002,Mensah,Adjoa,F,1979,,,,,,2026-01-01,";
    let h2_child = "H2,child,,Mensah,Elom,M,2016,,,,,,,";
    let h3 = "H3,principal,TSV-2003,Koffi,Edem,M,1990,,,,,,2026-01-01,";
    let job = run(app, "mut-a", "k1", &query, CSV, csv(&[h2, h3, h2_child])).await;
    assert_eq!(job["status"], "completed", "{job}");
    let not_contiguous = |row| (row, "household".to_owned(), "household_not_contiguous".to_owned());
    assert_eq!(codes(&job), [not_contiguous(2), not_contiguous(4)]);
    // H3 only; both runs of H2 fail (2 rows, 2 errors).
    assert_eq!(counts(&job), [3, 1, 0, 2, 2]);
    assert_eq!(app.count("coverages").await, 1);

    let job = run(app, "mut-a", "k2", &query, CSV, csv(&[h2, h2_child, h3])).await;
    assert_eq!(codes(&job), []);
    assert_eq!(counts(&job), [3, 1, 1, 0, 0]);
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM coverages WHERE member_number = 'TSV-2002'")
            .await,
        2,
        "H2 with its child"
    );
}

/// A quote left open fails its own row's household and hides none of the rows after it; a last
/// row cut short is `truncated`; a byte order mark before a quoted header is fine.
async fn a_quote_left_open_or_a_cut_last_row_fails_only_its_household(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let quoted: Vec<String> = HEADER.split(',').map(|c| format!("\"{c}\"")).collect();
    let mut body = format!("\u{FEFF}{}\r\n", quoted.join(","));
    for row in [
        "H1,principal,TSV-4001,Mensah,Kofi,M,1980,,,,,,2026-01-01,",
        "H1,child,,\"Mensah,Yao,M,2015,,,,,,,",
        "H2,principal,TSV-4002,Dossou,\"Afi, Délali\",F,1982,,,,,,2026-01-01,",
        "H2,child,,Dossou,Kodjo,M,2014,,,,,,,",
        "H3,principal,TSV-4003,Sow,Ali,M,1980,,,,,,2026-01-01,2026-12-31",
    ] {
        body.push_str(row);
        body.push_str("\r\n");
    }
    body.push_str("H4,principal,TSV-4004,Ba,Awa,F,19");
    let job = run(
        app,
        "mut-a",
        "k1",
        &format!("?product={}", r.product),
        CSV,
        body.into_bytes(),
    )
    .await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        codes(&job),
        [
            (3, "family_name".to_owned(), "unclosed_quote".to_owned()),
            (7, String::new(), "truncated".to_owned()),
        ]
    );
    assert_eq!(job["rows_total"], 6);
    // H2 and H3 registered; H1 (2 rows) and H4 (1 row) failed.
    assert_eq!(counts(&job), [6, 2, 0, 3, 2]);
    assert_eq!(app.count("coverages").await, 3);
}

/// Storage's verdicts name the member at fault: a dependant's own member number held by another
/// person, or a dependant already covered, is reported on that dependant's row.
async fn storage_conflicts_point_at_the_member_at_fault(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let query = format!("?product={}", r.product);
    let job = run(app, "mut-a", "k1", &query, CSV, csv(&GOOD[..1])).await;
    assert_eq!(counts(&job), [1, 1, 0, 0, 0]);
    let job = run(
        app,
        "mut-a",
        "k2",
        &query,
        CSV,
        csv(&[
            "H5,principal,TSV-5001,Dossou,Afi,F,1982,,,,,,2026-01-01,",
            // TSV-1001 is GOOD's principal's.
            "H5,child,TSV-1001,Dossou,Kodjo,M,2014,,,,,,,",
            "H6,principal,TSV-6001,Sow,Ali,M,1980,,,,,,2026-01-01,",
            // GOOD's principal, covered by the product already.
            "H6,other,,Agbéko,Kossi,M,1984-03-12,TG:NIU:123456789012,,,,,,",
            "H7,principal,TSV-7001,Ba,Awa,F,1980,,,,,,2026-01-01,",
        ]),
    )
    .await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        codes(&job),
        [
            (3, "member_number".to_owned(), "member_number_taken".to_owned()),
            (5, String::new(), "already_covered".to_owned()),
        ]
    );
    assert_eq!(job["errors"][1]["household"], "H6");
    assert_eq!(counts(&job), [5, 1, 0, 4, 2]);
    assert_eq!(app.count("coverages").await, 2);
}

/// A row whose national id is stored for a person of another sex or birth fails its household
/// with `identity_mismatch` on that row, as a single registration is refused; the other
/// households register, a year-only birth matching a full date of its year. The job tells nothing
/// of the stored person, and the same file again skips what it registered and fails the same rows.
/// A file's dependant whose member number is taken fails its household the same way whatever its
/// principal's national id matches: told only after the match, it confirmed a right guess of a
/// stranger's sex and birth without an audit event (from a privacy review).
async fn a_taken_number_fails_its_household_before_any_match(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let job = run(
        app,
        "mut-a",
        "k1",
        &format!("?product={}", r.product),
        CSV,
        csv(&GOOD[..1]),
    )
    .await;
    assert_eq!(counts(&job), [1, 1, 0, 0, 0]);
    let plan_b = app
        .post("/v1/products", &writer(app, "mut-b"), &family_plan("2026-01-01"))
        .await;
    let query = format!("?product={}", plan_b.json["id"].as_str().unwrap());
    let own = run(
        app,
        "mut-b",
        "k2",
        &query,
        CSV,
        csv(&["B1,principal,B-1001,Sow,Ali,M,1980,,,,,,2026-01-01,"]),
    )
    .await;
    assert_eq!(counts(&own), [1, 1, 0, 0, 0]);
    let before = app.audited().await;
    // GOOD's principal is a man born on 1984-03-12: G1 guesses right, G2 wrong.
    let file = csv(&[
        "G1,principal,B-2001,Agbeko,K.,M,1984,TG:NIU:123456789012,,,,,2026-01-01,",
        "G1,spouse,B-1001,Agbeko,Ama,F,1990,,,,,,,",
        "G2,principal,B-2002,Agbeko,K.,F,1984,TG:NIU:123456789012,,,,,2026-01-01,",
        "G2,spouse,B-1001,Agbeko,Ama,F,1990,,,,,,,",
    ]);
    let job = run(app, "mut-b", "k3", &query, CSV, file).await;
    let taken: Vec<(u64, String)> = codes(&job).into_iter().map(|(row, _, code)| (row, code)).collect();
    assert_eq!(
        taken,
        [
            (3, "member_number_taken".to_owned()),
            (5, "member_number_taken".to_owned())
        ],
        "{job}"
    );
    // The job's own two events, and no refusal that tells one guess from the other.
    assert_eq!(app.audited().await - before, 2, "{job}");
}

async fn a_national_id_of_someone_else_fails_its_household(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let job = run(
        app,
        "mut-a",
        "k1",
        &format!("?product={}", r.product),
        CSV,
        csv(&GOOD[..1]),
    )
    .await;
    assert_eq!(counts(&job), [1, 1, 0, 0, 0]);
    let plan_b = app
        .post("/v1/products", &writer(app, "mut-b"), &family_plan("2026-01-01"))
        .await;
    let query = format!("?product={}", plan_b.json["id"].as_str().unwrap());
    let file = csv(&[
        // GOOD's principal is a man born on 1984-03-12.
        "B1,principal,B-1001,Mensah,Ama,F,1984-03-12,TG:NIU:123456789012,,,,,2026-01-01,",
        "B2,principal,B-1002,Sow,Ali,M,1980,,,,,,2026-01-01,",
        "B2,child,,Sow,Awa,F,2015,,,,,,,",
        "B3,principal,B-1003,Ba,Awa,F,1980,,,,,,2026-01-01,",
        "B3,spouse,,Ba,Kossi,M,1985,TG:NIU:123456789012,,,,,,",
        // Created by this file, then named again with another sex.
        "B4,principal,B-1004,Lawson,Edem,F,1990,TG:NIU:123456789013,,,,,2026-01-01,",
        "B5,principal,B-1005,Lawson,Edem,M,1990-06-15,TG:NIU:123456789013,,,,,2026-01-01,",
        // Names are not compared; the year alone agrees with the stored day.
        "B6,principal,B-1006,Agbeko,K.,M,1984,TG:NIU:123456789012,,,,,2026-01-01,",
    ]);
    let mismatches = [
        (2, String::new(), "identity_mismatch".to_owned()),
        (6, String::new(), "identity_mismatch".to_owned()),
        (8, String::new(), "identity_mismatch".to_owned()),
    ];
    let job = run(app, "mut-b", "k2", &query, CSV, file.clone()).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(codes(&job), mismatches, "{job}");
    assert_eq!(
        ["B1", "B3", "B5"].map(String::from).to_vec(),
        job["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["household"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    );
    assert_eq!(counts(&job), [8, 3, 0, 4, 3]);
    // Each household so refused leaves a trace naming no one, as a single registration does.
    let refusals = "SELECT count(*) FROM (SELECT organization, action, resource_id, request_id FROM audit_events \
                    UNION ALL SELECT organization, action, resource_id, request_id FROM audit_queue) e \
                    WHERE action = 'beneficiary.identity_mismatch' AND organization = 'mut-b' \
                    AND resource_id = '' AND request_id LIKE 'batch-%'";
    assert_eq!(app.db.scalar(refusals).await, 3);
    // Recorded with the rows' group, before the job's end, as the job's other events.
    let log = app
        .get(
            "/v1/audit-events?organization=mut-b&limit=500",
            &app.token("operator", "audit:read"),
        )
        .await;
    let job_id = job["id"].as_str().unwrap();
    let mut actions: Vec<String> = log.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["request_id"].as_str().is_some_and(|r| r.ends_with(job_id)))
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    actions.reverse();
    assert_eq!(
        actions.last().map(String::as_str),
        Some("registration_batch.completed"),
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| *a == "beneficiary.identity_mismatch").count(),
        3,
        "{actions:?}"
    );
    let errors = job["errors"].to_string();
    for secret in ["1984-03-12", "22890123456", "Agb", "Zio", "Maritime"] {
        assert!(!errors.contains(secret), "{secret} in {errors}");
    }
    // mut-a's household, B2's two, B4's and B6's coverages; B3's principal was not written.
    assert_eq!(app.count("coverages").await, 5);
    assert_eq!(app.count("beneficiaries").await, 4);
    let matched = "SELECT count(*) FROM coverages c JOIN beneficiaries b ON b.id = c.beneficiary \
                   WHERE b.nid_value = '123456789012' AND c.member_number IN ('TSV-1001', 'B-1006')";
    assert_eq!(app.db.scalar(matched).await, 2, "B6 matched GOOD's principal");

    // The same file again: what registered is skipped, the same rows fail the same way.
    let job = run(app, "mut-b", "k3", &query, CSV, file).await;
    assert_eq!(codes(&job), mismatches, "{job}");
    assert_eq!(counts(&job), [8, 0, 3, 4, 3], "{job}");
    assert_eq!(app.count("coverages").await, 5);

    // JSON lines: at the member's pointer, on the household's line.
    let niu = |value: &str| json!({"country": "TG", "type": "NIU", "value": value});
    let line = |member: &str, principal_niu: Option<&str>, dependant_niu: Option<&str>| {
        let mut principal = json!({"family_name": "Traoré", "given_names": "Awa", "sex": "F", "birth_date": "1975"});
        if let Some(value) = principal_niu {
            principal["national_id"] = niu(value);
        }
        // A man: Edem (…013) is a woman born in 1990.
        let mut dependant = json!({"relationship": "other", "family_name": "Traoré", "given_names": "Bakary",
            "sex": "M", "birth_date": "1990-07-01"});
        if let Some(value) = dependant_niu {
            dependant["national_id"] = niu(value);
        }
        json!({"member_number": member, "start_date": "2026-01-01", "principal": principal,
            "dependants": [dependant]})
        .to_string()
    };
    let body = format!(
        "{}\n{}\n{}\n",
        line("SGU-1", Some("123456789012"), None),
        line("SGU-2", None, Some("123456789013")),
        line("SGU-3", None, None),
    );
    let job = run(app, "mut-b", "k4", &query, NDJSON, body.into_bytes()).await;
    assert_eq!(
        codes(&job),
        [
            (1, "/principal".to_owned(), "identity_mismatch".to_owned()),
            (2, "/dependants/0".to_owned(), "identity_mismatch".to_owned()),
        ],
        "{job}"
    );
    assert_eq!(counts(&job), [3, 1, 0, 2, 2], "{job}");
}

/// A household posted again whose member's national id is stored for a person of another sex or
/// birth date fails as its first registration would (`identity_mismatch`), principal or dependant:
/// a mistyped row is never taken for the stored person and skipped in silence. A row that agrees
/// (a year-only birth date in the stored day's year) is skipped as before.
async fn a_household_posted_again_with_another_identity_fails(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let query = format!("?product={}", r.product);
    let first = [
        GOOD[0],
        GOOD[1],
        "H4,principal,TSV-1004,Kpodar,Enyonam,F,1990,,,,,,2026-01-01,",
        "H4,spouse,,Kpodar,Komlan,M,1987-02-01,TG:NIU:123456789013,,,,,,",
    ];
    let job = run(app, "mut-a", "k1", &query, CSV, csv(&first)).await;
    assert_eq!(counts(&job), [4, 2, 0, 0, 0], "{job}");
    let again = [
        // The principal is a man born on 1984-03-12.
        "H1,principal,TSV-1001,Agbéko,Kossi,F,1984-03-12,TG:NIU:1234 5678 9012,,,,,2026-01-01,",
        GOOD[1],
        "H4,principal,TSV-1004,Kpodar,Enyonam,F,1990,,,,,,2026-01-01,",
        "H4,spouse,,Kpodar,Komlan,M,1988,TG:NIU:123456789013,,,,,,",
        // Agrees: the same year.
        "H5,principal,TSV-1001,Agbeko,K.,M,1984,TG:NIU:123456789012,,,,,2026-01-01,",
    ];
    let job = run(app, "mut-a", "k2", &query, CSV, csv(&again)).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        codes(&job),
        [
            (2, String::new(), "identity_mismatch".to_owned()),
            (5, String::new(), "identity_mismatch".to_owned())
        ],
        "{job}"
    );
    assert_eq!(counts(&job), [5, 0, 1, 4, 2], "{job}");
    let errors = job["errors"].to_string();
    for secret in ["1984-03-12", "1987", "Komlan", "Kossi"] {
        assert!(!errors.contains(secret), "{secret} in {errors}");
    }
    assert_eq!(app.count("coverages").await, 4);
    assert_eq!(app.count("beneficiaries").await, 4);
}

/// A household posted again with a member it does not hold (a child born since, say) is skipped,
/// and that member is reported on their row with where to add them: never dropped in silence.
/// Members it holds match as the dependants call matches them (names without case or accents, a
/// year-only birth date any day of its year); a terminated member is not held, unless the whole
/// household is terminated. Under another product the household fails. The same holds for a
/// household twice in one file.
async fn a_household_posted_again_reports_the_members_it_lacks(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let query = format!("?product={}", r.product);
    let job = run(app, "mut-a", "k1", &query, CSV, csv(&GOOD)).await;
    assert_eq!(counts(&job), [4, 2, 0, 0, 0]);
    let again = [
        GOOD[0],
        "H1,spouse,,AGBEKO,AKOSSIWA ELISE,F,1988-05-04,,,Maritime,Zio,Zio 1,,",
        "H1,child,,Agbéko,Mawuli,M,2026-10-02,,,,,,,",
        GOOD[2],
        GOOD[3],
        "H3,principal,TSV-1003,Kpodar,Enyonam,F,1990,,,,,,2026-01-01,",
    ];
    let job = run(app, "mut-a", "k2", &query, CSV, csv(&again)).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(codes(&job), [(4, String::new(), "not_in_household".to_owned())]);
    assert_eq!(counts(&job), [6, 1, 2, 1, 1]);
    assert_eq!(job["errors"][0]["household"], "H1");
    assert_eq!(app.count("coverages").await, 5);
    // The message says where the member can be added; there they are.
    let message = job["errors"][0]["message"].as_str().unwrap();
    let start = message.find("/v1/coverages/").expect(message);
    let end = start + message[start..].find("/dependants").expect(message) + "/dependants".len();
    let path = &message[start..end];
    // And that a member the file merely spells otherwise is corrected, not added twice.
    assert!(message.contains("PATCH /v1/beneficiaries/"), "{message}");
    let added = app
        .send(
            app.request(Method::POST, path)
                .bearer_auth(writer(app, "mut-a"))
                .header("idempotency-key", "d1")
                .json(
                    &json!({"relationship": "child", "start_date": "2026-10-02", "family_name": "Agbéko",
                    "given_names": "Mawuli", "sex": "M", "birth_date": "2026-10-02"}),
                ),
        )
        .await;
    assert_eq!(added.status.as_u16(), 201, "{}", added.text);
    assert_eq!(added.json["coverage"]["member_number"], "TSV-1001");
    // Now the household holds them: the same file again reports nothing.
    let job = run(app, "mut-a", "k3", &query, CSV, csv(&again)).await;
    assert_eq!(counts(&job), [6, 0, 3, 0, 0], "{job}");
    assert_eq!(app.count("coverages").await, 6);
    // A member terminated since is not held: listed again, they are reported.
    app.db
        .execute(
            "UPDATE coverages SET status = 'terminated' WHERE beneficiary IN \
             (SELECT id FROM beneficiaries WHERE given_names = 'Yao')",
        )
        .await;
    let job = run(app, "mut-a", "k3b", &query, CSV, csv(&again)).await;
    assert_eq!(codes(&job), [(5, String::new(), "not_in_household".to_owned())]);
    // The whole household terminated: only someone new is reported, without a call that would
    // be refused.
    let principal = &path["/v1/coverages/".len()..path.len() - "/dependants".len()];
    let coverage_path = format!("/v1/coverages/{principal}");
    let etag = app
        .get(&coverage_path, &writer(app, "mut-a"))
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    let ended = app
        .send(
            app.request(Method::PATCH, &coverage_path)
                .bearer_auth(writer(app, "mut-a"))
                .header("if-match", etag)
                .json(&json!({"status": "terminated", "end_date": "2026-11-30"})),
        )
        .await;
    assert_eq!(ended.status.as_u16(), 200, "{}", ended.text);
    let mut later = again.to_vec();
    later.insert(4, "H1,child,,Agbéko,Kafui,F,2026-11-20,,,,,,,");
    let job = run(app, "mut-a", "k3c", &query, CSV, csv(&later)).await;
    assert_eq!(codes(&job), [(6, String::new(), "household_terminated".to_owned())]);
    assert!(!job["errors"][0]["message"].as_str().unwrap().contains("/v1/"), "{job}");
    assert_eq!(counts(&job), [7, 0, 3, 1, 1]);
    assert_eq!(app.count("coverages").await, 6);

    // Under another product of the mutuelle, the household registered for the first fails.
    let other = app
        .post("/v1/products", &writer(app, "mut-a"), &family_plan("2026-01-01"))
        .await;
    let other = format!("?product={}", other.json["id"].as_str().unwrap());
    let job = run(app, "mut-a", "k4", &other, CSV, csv(&GOOD[3..])).await;
    assert_eq!(
        codes(&job),
        [(2, "member_number".to_owned(), "registered_for_other_product".to_owned())]
    );
    assert_eq!(counts(&job), [1, 0, 0, 1, 1]);
    assert_eq!(app.count("coverages").await, 6);

    // Twice in one file (JSON lines): the second, with two more members, is skipped and those
    // members reported at their pointers; the line fails once.
    let line = |dependants: Value| {
        json!({"member_number": "SGU-1", "start_date": "2026-01-01",
            "principal": {"family_name": "Traoré", "given_names": "Awa", "sex": "F", "birth_date": "1975"},
            "dependants": dependants})
        .to_string()
    };
    let child = |name: &str| json!({"relationship": "child", "family_name": "Traoré", "given_names": name, "sex": "M", "birth_date": "2012-05-04"});
    let body = format!(
        "{}\n{}\n",
        line(json!([child("Bakary")])),
        line(json!([child("Bakary"), child("Seydou"), child("Modibo")]))
    );
    let job = run(app, "mut-a", "k5", &query, NDJSON, body.into_bytes()).await;
    assert_eq!(
        codes(&job),
        [
            (2, "/dependants/1".to_owned(), "not_in_household".to_owned()),
            (2, "/dependants/2".to_owned(), "not_in_household".to_owned())
        ]
    );
    assert_eq!(counts(&job), [2, 1, 1, 1, 2], "{job}");
    assert_eq!(app.count("coverages").await, 8);
}

/// A mutuelle deactivated while its uploads wait or run: nothing more is registered in its name,
/// and a job that stops says why.
async fn a_deactivated_mutuelles_jobs_stop(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let query = format!("?product={}", r.product);
    let first = upload(app, "mut-a", Some("k1"), &query, CSV, households(4000, "TSV")).await;
    assert_eq!(first.status.as_u16(), 202, "{}", first.text);
    // Queued behind the first: it starts after the deactivation, whatever the machine's speed.
    let second = upload(app, "mut-a", Some("k2"), &query, CSV, households(3, "LATE")).await;
    assert_eq!(second.status.as_u16(), 202, "{}", second.text);
    let off = app
        .send(
            app.request(Method::POST, "/v1/organizations/mut-a/deactivate")
                .bearer_auth(app.operator()),
        )
        .await;
    assert_eq!(off.status.as_u16(), 200, "{}", off.text);
    let location = second.header("location").unwrap().to_owned();
    let mut job = Value::Null;
    for _ in 0..600 {
        job = app.get(&location, &app.operator()).await.json;
        if matches!(job["status"].as_str(), Some("completed" | "failed")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["failure"]["code"], "organization_deactivated", "{job}");
    assert_eq!(job["households_created"], 0, "{job}");
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM coverages WHERE member_number LIKE 'LATE%'")
            .await,
        0
    );
    // And the mutuelle itself can no longer read it.
    app.get(&location, &writer(app, "mut-a"))
        .await
        .problem(403, "forbidden");
}

async fn json_lines_with_good_and_bad_lines(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let plan_b = app
        .post("/v1/products", &writer(app, "mut-b"), &family_plan("2026-01-01"))
        .await;
    let product_b = plan_b.json["id"].as_str().unwrap();
    let line = |member: &str, extra: Value| {
        let mut body = json!({"member_number": member, "start_date": "2026-01-01",
            "principal": {"family_name": "Traoré", "given_names": "Awa", "sex": "F", "birth_date": "1975-01-01",
                          "birth_date_precision": "year", "locality": {"region": "Ségou", "district": "Ségou", "commune": "Pelengana"}},
            "dependants": [{"relationship": "child", "family_name": "Traoré", "given_names": "Bakary", "sex": "M", "birth_date": "2012-05-04"}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body.to_string()
    };
    let lines = [
        line("SGU-1", json!({})),
        line("SGU-2", json!({"product": r.product})),
        "{\"member_number\": \"SGU-3\", \"start_date\": ".to_owned(),
        String::new(),
        line("SGU-4", json!({"start_date": "2026-13-01"})),
        line("SGU-5", json!({"product": product_b})),
    ];
    let body = format!("{}\n", lines.join("\n"));
    let job = run(
        app,
        "mut-a",
        "k1",
        &format!("?product={}", r.product),
        NDJSON,
        body.clone().into_bytes(),
    )
    .await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        codes(&job),
        [
            (3, String::new(), "malformed_json".to_owned()),
            (5, "/start_date".to_owned(), "invalid_date".to_owned()),
            (6, "/product".to_owned(), "unknown_reference".to_owned()),
        ]
    );
    assert_eq!(job["errors"][2]["household"], "SGU-5");
    assert_eq!(job["rows_total"], 5);
    assert_eq!(counts(&job), [5, 2, 0, 3, 3]);
    assert_eq!(app.count("coverages").await, 4);
    // Without a default product, a line that names none fails on /product.
    let job = run(
        app,
        "mut-a",
        "k2",
        "",
        NDJSON,
        format!("{}\n", line("SGU-9", json!({}))).into_bytes(),
    )
    .await;
    assert_eq!(codes(&job), [(1, "/product".to_owned(), "required".to_owned())]);
}

async fn only_its_mutuelle_operators_and_auditors_read_a_job(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let job = run(app, "mut-a", "k1", &format!("?product={}", r.product), CSV, csv(&GOOD)).await;
    let location = format!("/v1/registrations/batches/{}", job["id"].as_str().unwrap());
    app.get(&location, &writer(app, "mut-b"))
        .await
        .problem(404, "not_found");
    app.get("/v1/registrations/batches/nope", &writer(app, "mut-a"))
        .await
        .problem(404, "not_found");
    let seen = app.get(&location, &app.operator()).await;
    assert_eq!(seen.status.as_u16(), 200);
    assert_eq!(seen.json, job);
    let audited = app.audited().await;
    let seen = app.get(&location, &app.token("audit-x", "registry:read")).await;
    assert_eq!(seen.status.as_u16(), 200);
    assert_eq!(app.audited().await, audited + 1, "an auditor's read is audited");
    app.get(&location, &app.token("mut-a", "registry:write"))
        .await
        .problem(403, "forbidden");
    // The job's own trail: created, then completed, under the job's request id.
    let trail = app
        .db
        .scalar(&format!(
            "SELECT count(*) FROM (SELECT action, resource_type, resource_id FROM audit_events UNION ALL \
             SELECT action, resource_type, resource_id FROM audit_queue) e \
             WHERE resource_type = 'registration_batch' AND resource_id = '{}' \
             AND action IN ('registration_batch.created', 'registration_batch.completed')",
            job["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(trail, 2);

    // The list: the mutuelle's own jobs in upload order, without their rows, a page at a time.
    let again = run(app, "mut-a", "k2", &format!("?product={}", r.product), CSV, csv(&GOOD)).await;
    let first = app
        .get("/v1/registrations/batches?limit=1", &writer(app, "mut-a"))
        .await;
    assert_eq!(first.status.as_u16(), 200, "{}", first.text);
    let item = &first.json["items"][0];
    assert_eq!(item["id"], job["id"]);
    assert_eq!(item["households_created"], job["households_created"]);
    assert!(item.get("errors").is_none(), "{item}");
    let cursor = first.json["next_cursor"].as_str().unwrap();
    let second = app
        .get(
            &format!("/v1/registrations/batches?limit=1&cursor={cursor}"),
            &writer(app, "mut-a"),
        )
        .await;
    assert_eq!(second.json["items"][0]["id"], again["id"]);
    assert_eq!(second.json["next_cursor"], Value::Null);
    let ids = |reply: &Reply| -> Vec<Value> {
        reply.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].clone())
            .collect()
    };
    let completed = app
        .get("/v1/registrations/batches?status=completed", &writer(app, "mut-a"))
        .await;
    assert_eq!(ids(&completed), [job["id"].clone(), again["id"].clone()]);
    let failed = app
        .get("/v1/registrations/batches?status=failed", &writer(app, "mut-a"))
        .await;
    assert_eq!(ids(&failed), Vec::<Value>::new());
    // A cursor this service did not issue, even one that decodes to a NUL: 422, on both databases.
    app.get("/v1/registrations/batches?cursor=c100", &writer(app, "mut-a"))
        .await
        .problem(422, "validation_failed");
    app.get("/v1/registrations/batches?status=done", &writer(app, "mut-a"))
        .await
        .problem(422, "validation_failed");
    let other = app.get("/v1/registrations/batches", &writer(app, "mut-b")).await;
    assert_eq!(ids(&other), Vec::<Value>::new());
    let all = app.get("/v1/registrations/batches", &app.operator()).await;
    assert_eq!(ids(&all).len(), 2);
}

/// A JSON body that has not arrived within `request_timeout` is answered 408, as a problem with
/// the request's id that says nothing was done, and the connection closed; an upload may take longer
/// (`bulk::UPLOAD_TIMEOUT`). The two kinds of route are wrapped in different layers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_have_their_own_timeout() {
    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let timeout = Duration::from_millis(1500);
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.request_timeout = timeout).await;
    app.create_org("mut-a", "mutuelle", "TG").await;
    let plan = app
        .post("/v1/products", &writer(&app, "mut-a"), &family_plan("2026-01-01"))
        .await;
    assert_eq!(plan.status.as_u16(), 201, "{}", plan.text);

    // Half a product, then nothing: 408 once the timeout has passed, and nothing created.
    let body = serde_json::to_vec(&family_plan("2026-02-01")).unwrap();
    let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST /v1/products HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nx-request-id: slow-body-1\r\n\r\n",
        writer(&app, "mut-a"),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..body.len() / 2]).await.unwrap();
    let sent = std::time::Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.ends_with(b"}") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "closed without an answer: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    let waited = sent.elapsed();
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    for expected in [
        "content-type: application/problem+json",
        "connection: close",
        "cache-control: no-store",
        "x-request-id: slow-body-1",
        "\"code\":\"request_timeout\"",
        // The body never came whole, so nothing acted on it.
        "rien n'a été fait : renvoyez la requête",
    ] {
        assert!(answer.contains(expected), "{expected} in {answer}");
    }
    assert!(!answer.contains("retry-after"), "{answer}");

    // A body all in, its handler waiting for the database (SQLite's writer held elsewhere) past
    // the timeout: 503, since it might have been applied.
    {
        use sqlx::{Connection, Executor};
        let mut holder = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
        holder.execute("BEGIN IMMEDIATE").await.unwrap();
        let waiting = app
            .post("/v1/products", &writer(&app, "mut-a"), &family_plan("2026-03-01"))
            .await;
        let problem = waiting.problem(503, "unavailable");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("plus longtemps que le service ne le permet"),
            "{}",
            waiting.text
        );
        holder.execute("ROLLBACK").await.unwrap();
    }
    assert!(
        waited >= timeout / 2 && waited < timeout * 5,
        "answered after {waited:?}"
    );
    assert_eq!(app.count("products").await, 1);

    // A file whose second half comes twice the timeout after its first is taken whole.
    let query = format!("?product={}", plan.json["id"].as_str().unwrap());
    let file = households(4, "TMO");
    let (first, second) = file.split_at(file.len() / 2);
    let pause = timeout * 2;
    let slow = futures::stream::iter([(first.to_vec(), Duration::ZERO), (second.to_vec(), pause)]).then(
        |(chunk, wait)| async move {
            tokio::time::sleep(wait).await;
            Ok::<_, std::io::Error>(chunk)
        },
    );
    let reply = upload(&app, "mut-a", Some("k1"), &query, CSV, reqwest::Body::wrap_stream(slow)).await;
    assert_eq!(reply.status.as_u16(), 202, "{}", reply.text);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let job = finished(&app, "mut-a", reply.header("location").unwrap()).await;
    assert_eq!(counts(&job), [8, 4, 0, 0, 0]);
}

async fn uploads_have_their_own_size_limit(backend: Backend) {
    // The default: an upload over the 1 MiB JSON limit is fine, a JSON body over it is not.
    let r = registry(backend).await;
    let app = &r.app;
    let mut big = csv(&GOOD);
    while big.len() < (3 << 19) {
        big.extend_from_slice(b",,,,,,,,,,,,,\n");
    }
    let job = run(app, "mut-a", "k1", &format!("?product={}", r.product), CSV, big).await;
    assert_eq!(job["status"], "completed");
    assert_eq!(counts(&job), [4, 2, 0, 0, 0]);
    let mut huge = crate::registry::household(&r.product, "TSV-9", "123456789099");
    huge["principal"]["given_names"] = json!("x".repeat(3 << 19));
    crate::registry::register(app, "mut-a", "k9", &huge)
        .await
        .problem(413, "payload_too_large");

    // A small bulk limit: over it is 413 and nothing is created, with or without a length.
    // A spool folder of its own: the end of the test makes it unwritable.
    let (app, own_spool, query) = small_spool(backend, 2048, 2048 * 8).await;
    let body = households(40, "TSV");
    assert!(body.len() > 2048);
    upload(&app, "mut-a", Some("k1"), &query, CSV, body.clone())
        .await
        .problem(413, "payload_too_large");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body.chunks(512).map(|c| Ok(c.to_vec())).collect();
    let streamed = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    upload(&app, "mut-a", Some("k2"), &query, CSV, streamed)
        .await
        .problem(413, "payload_too_large");
    assert_eq!(app.count("registration_batches").await, 0);
    let job = run(&app, "mut-a", "k3", &query, CSV, households(10, "TSV")).await;
    assert_eq!(counts(&job), [20, 10, 0, 0, 0]);

    // A spool folder that can no longer be written (here a file took its place): 503 saying so,
    // not that the database is out of reach, and nothing created.
    let spool = app.config.batch_spool_dir.clone();
    assert_eq!(spool, own_spool);
    // Uploads hold personal data: the folder the service made is its user's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&spool).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }
    std::fs::remove_dir_all(&spool).unwrap();
    std::fs::write(&spool, b"").unwrap();
    let refused = upload(&app, "mut-a", Some("k4"), &query, CSV, households(2, "TSV")).await;
    let problem = refused.problem(503, "unavailable");
    assert!(
        problem["detail"].as_str().unwrap().contains("dossier de dépôt"),
        "{problem}"
    );
    assert_eq!(refused.header("retry-after"), Some("5"));
    assert_eq!(app.count("registration_batches").await, 1);
    std::fs::remove_file(&spool).unwrap();
}

/// A service whose uploads take at most `max_bytes` into a spool folder of its own holding at most
/// `spool_max_bytes`, with mut-a's family plan: the service, its folder, and the `?product=`
/// query naming the plan.
async fn small_spool(backend: Backend, max_bytes: u64, spool_max_bytes: u64) -> (TestApp, std::path::PathBuf, String) {
    let own_spool = std::env::temp_dir().join(format!("passerelle-spool-{}", uuid::Uuid::now_v7().simple()));
    let app = TestApp::spawn_with(backend, |c| {
        c.batch_max_bytes = max_bytes;
        c.batch_spool_max_bytes = spool_max_bytes;
        c.batch_spool_dir = own_spool.clone();
    })
    .await;
    app.create_org("mut-a", "mutuelle", "TG").await;
    let plan = app
        .post("/v1/products", &writer(&app, "mut-a"), &family_plan("2026-01-01"))
        .await;
    let query = format!("?product={}", plan.json["id"].as_str().unwrap());
    (app, own_spool, query)
}

/// The spool folder holds at most `batch_spool_max_bytes`: the uploads waiting for their jobs,
/// and those being received at their declared length (the largest upload without one). Past it
/// an upload is 503 with Retry-After 60, nothing created; once the waiting files are read, it
/// is taken.
async fn a_full_spool_refuses_uploads_until_jobs_read_them(backend: Backend) {
    let (app, own_spool, query) = small_spool(backend, 2048, 4096).await;
    let body = households(3, "TSV");
    assert!(body.len() < 1000, "{}", body.len());
    // An upload waiting for its job, as another request left it.
    std::fs::create_dir_all(&own_spool).unwrap();
    let waiting = own_spool.join("waiting.upload");
    std::fs::write(&waiting, vec![b'x'; 3900]).unwrap();
    let refused = upload(&app, "mut-a", Some("k1"), &query, CSV, body.clone()).await;
    refused.problem(503, "unavailable");
    assert_eq!(refused.header("retry-after"), Some("60"));
    assert_eq!(app.count("registration_batches").await, 0);
    // Room for what it declares, but not for the largest upload, which a body without a length
    // may be.
    std::fs::write(&waiting, vec![b'x'; 2500]).unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body.chunks(100).map(|c| Ok(c.to_vec())).collect();
    let streamed = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    upload(&app, "mut-a", Some("k2"), &query, CSV, streamed)
        .await
        .problem(503, "unavailable");
    assert_eq!(app.count("registration_batches").await, 0);
    let job = run(&app, "mut-a", "k3", &query, CSV, body).await;
    assert_eq!(counts(&job), [6, 3, 0, 0, 0]);
    std::fs::remove_dir_all(&own_spool).unwrap();
}

/// An upload that sends nothing for `batch_upload_idle` is cut, nothing kept, and its room in the
/// spool is given back: eight uploads that sent their header line and then nothing held the
/// whole spool, every mutuelle's uploads refused, for the 30 minutes an upload may take.
async fn an_upload_that_goes_silent_is_cut_and_gives_its_room_back(backend: Backend) {
    use futures::StreamExt;
    let own_spool = std::env::temp_dir().join(format!("passerelle-spool-{}", uuid::Uuid::now_v7().simple()));
    let app = TestApp::spawn_with(backend, |c| {
        c.batch_max_bytes = 2048;
        c.batch_spool_max_bytes = 2048;
        c.batch_spool_dir = own_spool.clone();
        c.batch_upload_idle = Duration::from_millis(300);
    })
    .await;
    app.create_org("mut-a", "mutuelle", "TG").await;
    let plan = app
        .post("/v1/products", &writer(&app, "mut-a"), &family_plan("2026-01-01"))
        .await;
    let query = format!("?product={}", plan.json["id"].as_str().unwrap());
    let body = households(3, "TSV");
    let header = body.split(|b| *b == b'\n').next().unwrap().to_vec();
    // Its header line, then nothing for far longer than the service waits.
    let silent = futures::stream::iter([(header, Duration::ZERO), (b"\n".to_vec(), Duration::from_secs(5))]).then(
        |(chunk, wait)| async move {
            tokio::time::sleep(wait).await;
            Ok::<_, std::io::Error>(chunk)
        },
    );
    let started = std::time::Instant::now();
    let cut = upload(
        &app,
        "mut-a",
        Some("k1"),
        &query,
        CSV,
        reqwest::Body::wrap_stream(silent),
    )
    .await;
    cut.problem(408, "request_timeout");
    assert!(cut.text.contains("pendant 0,3 seconde et"), "{}", cut.text);
    assert_eq!(cut.header("connection"), Some("close"));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cut after {:?}",
        started.elapsed()
    );
    assert_eq!(app.count("registration_batches").await, 0);
    // The spool holds room for one upload without a length: the silent one gave it back.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body.chunks(100).map(|c| Ok(c.to_vec())).collect();
    let reply = upload(
        &app,
        "mut-a",
        Some("k2"),
        &query,
        CSV,
        reqwest::Body::wrap_stream(futures::stream::iter(chunks)),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 202, "{}", reply.text);
    let job = finished(&app, "mut-a", reply.header("location").unwrap()).await;
    assert_eq!(counts(&job), [6, 3, 0, 0, 0]);
    let _ = std::fs::remove_dir_all(&own_spool);
}

/// The service on a runtime of its own, which the test can kill as a crash would: every task
/// stops where it is, open transactions roll back.
struct Doomed {
    base: String,
    kill: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

fn start_doomed(url: &str, spool: std::path::PathBuf) -> Doomed {
    let mut config = test_config(url);
    config.batch_spool_dir = spool;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (kill, kill_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let database = app::connect(&config).await.unwrap();
            database.migrate().await.unwrap();
            let limits = config.connection_limits();
            let state = app::state(config, &database).await.unwrap();
            app::ensure_operator(&state).await.unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let running = app::serve(listener, app::router(state), limits).await.unwrap();
            ready_tx.send(format!("http://{}", running.addr)).unwrap();
            std::mem::forget(running);
        });
        let _ = kill_rx.recv();
        rt.shutdown_background();
    });
    let base = ready_rx.recv().unwrap();
    Doomed { base, kill, thread }
}

/// Creates mut-a and its family plan on the service at `base` (one started by the test itself,
/// outside `TestApp`); returns the plan's id.
async fn mutuelle_with_plan(client: &reqwest::Client, base: &str) -> String {
    let token = |org: &str, scopes: &str| tokens::hs256(SECRET, &tokens::claims(org, scopes));
    let org = json!({"id": "mut-a", "kind": "mutuelle", "country": "TG", "name": "Mutuelle A"});
    let created = client
        .post(format!("{base}/v1/organizations"))
        .bearer_auth(token("operator", "admin"))
        .json(&org)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let plan: Value = client
        .post(format!("{base}/v1/products"))
        .bearer_auth(token("mut-a", "registry:write"))
        .json(&family_plan("2026-01-01"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    plan["id"].as_str().unwrap().to_owned()
}

/// A replica dies with one job running and one queued behind it.
/// - Replaced by a replica with a spool folder of its own (a new pod), the service fails the job
///   it finds stuck, and the queued one whose upload was lost with the dead replica: it cannot
///   read it, and the job must not wait forever.
/// - Restarted with the same folder (the pod's `emptyDir` survives a container restart), after
///   longer than the stale delay, it resumes the stuck job where its progress stops, and
///   processes the queued one: both uploads survived.
///
/// Either way, the first file posted again registers no one twice (it completes a failed job).
async fn a_crash_midway_then_the_same_file_again_completes_it(backend: Backend) {
    crash_midway(backend, false).await;
}

async fn uploads_that_survive_a_long_restart_are_processed(backend: Backend) {
    crash_midway(backend, true).await;
}

async fn crash_midway(backend: Backend, same_folder: bool) {
    const HOUSEHOLDS: usize = 4000;
    let db = TestDatabase::new(backend).await;
    // The doomed replica's spool folder is its own, as a pod's `emptyDir` is.
    let spool = std::env::temp_dir().join(format!("passerelle-doomed-{}", uuid::Uuid::new_v4().simple()));
    let doomed = start_doomed(&db.url, spool.join("doomed"));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let token = |org: &str, scopes: &str| tokens::hs256(SECRET, &tokens::claims(org, scopes));
    let plan = mutuelle_with_plan(&client, &doomed.base).await;
    let query = format!("?product={plan}");
    let file = households(HOUSEHOLDS, "TSV");
    let reader = token("mut-a", "registry:read registry:write");
    // Posts a file to the doomed replica and returns its job's location.
    let post_file = |key: &'static str, body: Vec<u8>| {
        let request = client
            .post(format!("{}/v1/registrations/batches{query}", doomed.base))
            .bearer_auth(&reader)
            .header("idempotency-key", key)
            .header("content-type", CSV)
            .body(body);
        async move {
            let accepted: Value = request.send().await.unwrap().json().await.unwrap();
            format!("/v1/registrations/batches/{}", accepted["id"].as_str().unwrap())
        }
    };
    let location = post_file("first", file.clone()).await;
    // A second upload, queued behind the first when the replica dies.
    let waiting = post_file("waiting", households(3, "LATE")).await;
    // Kill it once some households are in, well before the end.
    let mut seen = Value::Null;
    for _ in 0..2000 {
        seen = client
            .get(format!("{}{location}", doomed.base))
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if seen["households_created"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    doomed.kill.send(()).unwrap();
    doomed.thread.join().unwrap();
    assert_eq!(seen["status"], "running", "{seen}");
    let before = db
        .scalar("SELECT count(*) FROM coverages WHERE relationship = 'principal'")
        .await;
    assert!(before > 0 && (before as usize) < HOUSEHOLDS, "{before}");

    let mut config = test_config(&db.url);
    config.batch_stale_after = Duration::from_secs(3);
    if same_folder {
        config.batch_spool_dir = spool.join("doomed");
        // Down for longer than the stale delay: the queued job was last seen before the crash.
        tokio::time::sleep(Duration::from_millis(3500)).await;
    } else {
        config.batch_spool_dir = spool.join("replacement");
    }
    let app = TestApp::start(db, config).await;
    let job = finished(&app, "mut-a", &location).await;
    assert!(job["finished_at"].is_string());
    let first_job = if same_folder {
        assert_eq!(job["status"], "completed", "{job}");
        assert_eq!(
            job["households_created"], HOUSEHOLDS,
            "counted on from the crash: {job}"
        );
        assert_eq!(job["rows_processed"], 2 * HOUSEHOLDS, "{job}");
        HOUSEHOLDS as i64
    } else {
        assert_eq!(job["status"], "failed");
        assert_eq!(job["failure"]["code"], "interrupted");
        before
    };
    let job = finished(&app, "mut-a", &waiting).await;
    let late = if same_folder {
        assert_eq!(job["status"], "completed", "{job}");
        assert_eq!(job["households_created"], 3);
        3 * 2
    } else {
        assert_eq!(
            (&job["status"], &job["failure"]["code"]),
            (&json!("failed"), &json!("interrupted")),
            "{job}"
        );
        assert_eq!(job["households_created"], 0);
        0
    };
    let job = run(&app, "mut-a", "second", &query, CSV, file).await;
    assert_eq!(job["status"], "completed", "{job}");
    let skipped = job["households_skipped"].as_i64().unwrap();
    assert_eq!(skipped, first_job);
    assert_eq!(job["households_created"].as_i64().unwrap() + skipped, HOUSEHOLDS as i64);
    assert_eq!(job["rows_failed"], 0);
    assert_eq!(
        app.count("coverages").await,
        2 * HOUSEHOLDS as i64 + late,
        "no household twice"
    );
    assert_eq!(app.count("beneficiaries").await, 2 * HOUSEHOLDS as i64 + late);
    let verify = app.get("/v1/audit-events/verify", &app.operator()).await;
    assert_eq!(verify.json["valid"], true, "{}", verify.text);
    let _ = std::fs::remove_dir_all(spool);
}

/// A person created without a national id who looks like someone already registered, or
/// created earlier in the same file, is reported with whom, and created all the same; a person
/// with a national id is not compared; the same file again reports nothing (nothing is created).
async fn look_alikes_are_reported_not_merged(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let solo = json!({"product": r.product, "member_number": "SOLO-1", "start_date": "2026-01-01",
        "principal": {"family_name": "Kpélafia", "given_names": "Élom", "sex": "M", "birth_date": "1990-04-02"}});
    let reply = crate::registry::register(app, "mut-a", "solo", &solo).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let stored = reply.json["members"][0]["beneficiary"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = csv(&[
        "H1,principal,TSV-2001,KPELAFIA,elom,M,1990-04-02,,,,,,2026-01-01,",
        "H1,child,,Kpélafia,Yao,M,2015,,,,,,,",
        "H2,principal,TSV-2002,Amégbé,Kossi,M,1970,,,,,,2026-01-01,",
        "H3,principal,TSV-2003,amegbe,KOSSI,M,1970-06-01,,,,,,2026-01-01,",
        "H4,principal,TSV-2004,Kpélafia,Élom,M,1990-04-02,TG:NIU:900000002004,,,,,2026-01-01,",
    ]);
    let query = format!("?product={}", r.product);
    let job = run(app, "mut-a", "k1", &query, CSV, file.clone()).await;
    assert_eq!(counts(&job), [5, 4, 0, 0, 0], "{job}");
    assert_eq!(job["possible_duplicates_total"], 2, "{job}");
    let found = job["possible_duplicates"].as_array().unwrap();
    let located: Vec<(u64, &str, &str)> = found
        .iter()
        .map(|d| {
            (
                d["row"].as_u64().unwrap(),
                d["household"].as_str().unwrap(),
                d["field"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(located, [(2, "H1", "family_name"), (5, "H3", "family_name")]);
    // Row 2 looks like the person registered alone, and is a new person, stored as written.
    assert_eq!(found[0]["possible_duplicates"], json!([stored]));
    let created = found[0]["beneficiary"].as_str().unwrap();
    assert_ne!(created, stored);
    let person = app
        .get(&format!("/v1/beneficiaries/{created}"), &writer(app, "mut-a"))
        .await;
    assert_eq!(person.json["family_name"], "KPELAFIA", "{}", person.text);
    // Row 5 looks like row 4's person, created a moment before in the same file (known by the
    // year only, so any day of 1970 matches).
    let earlier = found[1]["possible_duplicates"][0].as_str().unwrap();
    let person = app
        .get(&format!("/v1/beneficiaries/{earlier}"), &writer(app, "mut-a"))
        .await;
    assert_eq!(
        (&person.json["family_name"], &person.json["birth_date_precision"]),
        (&json!("Amégbé"), &json!("year"))
    );
    assert_eq!(found[1]["possible_duplicates"].as_array().unwrap().len(), 1);

    let again = run(app, "mut-a", "k2", &query, CSV, file).await;
    assert_eq!(counts(&again), [5, 0, 4, 0, 0], "{again}");
    assert_eq!(again["possible_duplicates_total"], 0);
    assert_eq!(again["possible_duplicates"], json!([]));

    // Another mutuelle is not told of mut-a's members: they are not its to know of.
    let plan_b = app
        .post(
            "/v1/products",
            &writer(app, "mut-b"),
            &crate::products::family_plan("2026-01-01"),
        )
        .await;
    assert_eq!(plan_b.status.as_u16(), 201, "{}", plan_b.text);
    let query_b = format!("?product={}", plan_b.json["id"].as_str().unwrap());
    let elsewhere = csv(&["B1,principal,B-2001,Kpélafia,Élom,M,1990-04-02,,,,,,2026-01-01,"]);
    let job_b = run(app, "mut-b", "k3", &query_b, CSV, elsewhere).await;
    assert_eq!(counts(&job_b), [1, 1, 0, 0, 0], "{job_b}");
    assert_eq!(job_b["possible_duplicates_total"], 0, "{job_b}");
}

/// Uploads left in a replica's spool folder by jobs that ended elsewhere are removed once nobody
/// has written them for the stale delay; a fresh one (an upload still arriving) is kept, and so is
/// a file that is not an upload.
async fn leftover_uploads_are_removed(backend: Backend) {
    let dir = std::env::temp_dir().join(format!("passerelle-leftovers-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    let plant = |name: &str, old: bool| {
        let path = dir.join(name);
        std::fs::write(&path, "household\n").unwrap();
        if old {
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(hour_ago)
                .unwrap();
        }
        path
    };
    let (left, fresh, other) = (
        plant("left.upload", true),
        plant("fresh.upload", false),
        plant("notes.txt", true),
    );
    let spool = dir.clone();
    let _app = TestApp::spawn_with(backend, move |c| c.batch_spool_dir = spool).await;
    for _ in 0..100 {
        if !left.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!left.exists(), "the leftover upload is still there");
    assert!(fresh.exists() && other.exists());
    let _ = std::fs::remove_dir_all(dir);
}

/// A replica that stops gracefully (a rollout) hands its running job back to the queue at a
/// group boundary, its progress stored; claimed again, the job resumes after the rows already
/// processed: every household once, created (not skipped), each row error reported once.
async fn a_stopping_replica_hands_its_job_back_and_it_resumes(backend: Backend) {
    const HOUSEHOLDS: usize = 4000;
    let db = TestDatabase::new(backend).await;
    let mut config = test_config(&db.url);
    config.batch_spool_dir =
        std::env::temp_dir().join(format!("passerelle-handback-{}", uuid::Uuid::new_v4().simple()));
    let database = app::connect(&config).await.unwrap();
    database.migrate().await.unwrap();
    let limits = config.connection_limits();
    let state = app::state(config, &database).await.unwrap();
    app::ensure_operator(&state).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = app::serve(listener, app::router(state.clone()), limits).await.unwrap();
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let token = |org: &str, scopes: &str| tokens::hs256(SECRET, &tokens::claims(org, scopes));
    let plan = mutuelle_with_plan(&client, &base).await;
    // One bad row first (a field too many), then the households.
    let mut file = households(HOUSEHOLDS, "TSV");
    let first_line = file.iter().position(|b| *b == b'\n').unwrap() + 1;
    let bad = b"HX,principal,BAD-1,Xa,Yo,F,1975,,,,,,2026-01-01,,extra\n";
    file.splice(first_line..first_line, bad.iter().copied());
    let reader = token("mut-a", "registry:read registry:write");
    let accepted: Value = client
        .post(format!("{base}/v1/registrations/batches?product={plan}"))
        .bearer_auth(&reader)
        .header("idempotency-key", "k1")
        .header("content-type", CSV)
        .body(file)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let location = format!("{base}/v1/registrations/batches/{}", accepted["id"].as_str().unwrap());
    let read = || async {
        client
            .get(&location)
            .bearer_auth(&reader)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let until = |wanted: &'static str| async move {
        for _ in 0..1200 {
            let job = read().await;
            if job["status"] == wanted {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the job never became {wanted}");
    };
    for _ in 0..2000 {
        if read().await["households_created"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    state.bulk.stop();
    let handed_back = until("queued").await;
    let processed = handed_back["rows_processed"].as_i64().unwrap();
    assert!(processed > 1 && processed < 2 * HOUSEHOLDS as i64 + 1, "{handed_back}");
    assert_eq!(handed_back["errors_total"], 1, "{handed_back}");
    let principals = "SELECT count(*) FROM coverages WHERE relationship = 'principal'";
    let before = db.scalar(principals).await;
    assert_eq!(
        before,
        handed_back["households_created"].as_i64().unwrap(),
        "{handed_back}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        db.scalar(principals).await,
        before,
        "nothing more is written once handed back"
    );
    assert!(state.bulk.idle(Duration::from_secs(1)).await);

    state.bulk.resume();
    state.batch_queued.notify_one();
    let job = until("completed").await;
    assert_eq!(job["households_created"], HOUSEHOLDS as i64, "{job}");
    assert_eq!(job["households_skipped"], 0, "{job}");
    assert_eq!(job["rows_failed"], 1, "{job}");
    assert_eq!(job["errors_total"], 1, "{job}");
    assert_eq!(job["errors"].as_array().unwrap().len(), 1, "{job}");
    assert_eq!(job["rows_processed"], job["rows_total"], "{job}");
    assert_eq!(job["rows_total"], 2 * HOUSEHOLDS as i64 + 1);
    assert_eq!(db.scalar("SELECT count(*) FROM coverages").await, 2 * HOUSEHOLDS as i64);
    let _ = running.shutdown.send(());
    let _ = std::fs::remove_dir_all(&state.config.batch_spool_dir);
}

/// Member numbers ignore case in files too: the same households posted again with their numbers
/// in lower case are skipped, not registered twice; a new household under another spelling of
/// a stored number, or of one an earlier household of the file took, fails on that row.
async fn member_numbers_ignore_case_in_files(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let query = format!("?product={}", r.product);
    let job = run(app, "mut-a", "k1", &query, CSV, csv(&GOOD)).await;
    assert_eq!(counts(&job), [4, 2, 0, 0, 0], "{job}");
    let lowered: Vec<String> = GOOD.iter().map(|row| row.replace("TSV-", "tsv-")).collect();
    let lowered: Vec<&str> = lowered.iter().map(String::as_str).collect();
    // H1 alone, whose members all exist, writes nothing: decided as skipped from the first.
    let job = run(app, "mut-a", "k2", &query, CSV, csv(&lowered[..3])).await;
    assert_eq!(counts(&job), [3, 0, 1, 0, 0], "{job}");
    let job = run(app, "mut-a", "k2b", &query, CSV, csv(&lowered)).await;
    assert_eq!(counts(&job), [4, 0, 2, 0, 0], "{job}");
    assert_eq!(app.count("coverages").await, 4);
    let job = run(
        app,
        "mut-a",
        "k3",
        &query,
        CSV,
        csv(&[
            "H8,principal,Tsv-1002,Ba,Awa,F,1980,,,,,,2026-01-01,",
            "H9,principal,TSV-9001,Sow,Ali,M,1980,,,,,,2026-01-01,",
            "H10,principal,tsv-9001,Diallo,Mariam,F,1990,,,,,,2026-01-01,",
        ]),
    )
    .await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        codes(&job),
        [
            (2, "member_number".to_owned(), "member_number_taken".to_owned()),
            (4, "member_number".to_owned(), "member_number_taken".to_owned()),
        ]
    );
    assert_eq!(counts(&job), [3, 1, 0, 2, 2], "{job}");
    assert_eq!(app.count("coverages").await, 5);
}

/// API.md §5 Bulk: a member whose national id is registered for a person of another sex or
/// birth date fails the household, posted for the first time or again, with `identity_mismatch`
/// on that member's row, audited as `beneficiary.identity_mismatch`. A household posted again
/// with a new member carrying someone else's id (a man's, born in 1984, given to a girl born in
/// 2016) was skipped instead, the member reported as one to add (`not_in_household`), and
/// nothing was audited.
async fn a_household_posted_again_with_someone_elses_national_id_fails(backend: Backend) {
    let r = registry(backend).await;
    let app = &r.app;
    let query = format!("?product={}", r.product);
    let mut other = household(&r.product, "TSV-0900", "555555555555");
    other["dependants"] = json!([]);
    let reply = register(app, "mut-a", "k0", &other).await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    let job = run(app, "mut-a", "k1", &query, CSV, csv(&GOOD)).await;
    assert_eq!(counts(&job), [4, 2, 0, 0, 0], "{job}");
    let refusals = || async {
        let log = app
            .get(
                "/v1/audit-events?action=beneficiary.identity_mismatch&limit=500",
                &app.operator(),
            )
            .await;
        assert_eq!(log.status.as_u16(), 200, "{}", log.text);
        log.json["items"].as_array().unwrap().len()
    };
    let before = refusals().await;
    let again = [
        GOOD[0],
        GOOD[1],
        GOOD[2],
        "H1,child,,Agbéko,Afi,F,2016-02-02,TG:NIU:555555555555,,,,,,",
    ];
    let job = run(app, "mut-a", "k2", &query, CSV, csv(&again)).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        codes(&job),
        [(5, String::new(), "identity_mismatch".to_owned())],
        "{job}"
    );
    assert_eq!(counts(&job), [4, 0, 0, 4, 1], "{job}");
    assert_eq!(refusals().await, before + 1, "audited");
    // The same member with her own national id is one to add, as before.
    let own = [
        GOOD[0],
        GOOD[1],
        GOOD[2],
        "H1,child,,Agbéko,Afi,F,2016-02-02,TG:NIU:666666666666,,,,,,",
    ];
    let job = run(app, "mut-a", "k3", &query, CSV, csv(&own)).await;
    assert_eq!(
        codes(&job),
        [(5, String::new(), "not_in_household".to_owned())],
        "{job}"
    );
}

/// Organisations take turns on a replica: a mutuelle's small job does not wait for another's
/// large one to end. The large one goes back to the queue after its turn, at a group boundary,
/// and completes afterwards, every household once.
async fn organisations_take_turns(backend: Backend) {
    const LARGE: usize = 6000;
    let r = crate::registry::registry_with(backend, |c| c.batch_turn = Duration::from_millis(200)).await;
    let app = &r.app;
    let plan_b = app
        .post("/v1/products", &writer(app, "mut-b"), &family_plan("2026-01-01"))
        .await;
    assert_eq!(plan_b.status.as_u16(), 201, "{}", plan_b.text);
    let large = upload(
        app,
        "mut-a",
        Some("large"),
        &format!("?product={}", r.product),
        CSV,
        households(LARGE, "TSA"),
    )
    .await;
    assert_eq!(large.status.as_u16(), 202, "{}", large.text);
    let large = large.header("location").unwrap().to_owned();
    for _ in 0..2000 {
        if app.get(&large, &writer(app, "mut-a")).await.json["households_created"]
            .as_i64()
            .unwrap_or(0)
            > 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let small = run(
        app,
        "mut-b",
        "small",
        &format!("?product={}", plan_b.json["id"].as_str().unwrap()),
        CSV,
        households(3, "TSB"),
    )
    .await;
    assert_eq!(small["status"], "completed", "{small}");
    let meanwhile = app.get(&large, &writer(app, "mut-a")).await.json;
    assert_ne!(
        meanwhile["status"], "completed",
        "the small job waited for the large one: {meanwhile}"
    );
    assert!(
        meanwhile["households_created"].as_i64().unwrap() < LARGE as i64,
        "{meanwhile}"
    );
    let large = finished(app, "mut-a", &large).await;
    assert_eq!(large["status"], "completed", "{large}");
    assert_eq!(counts(&large), [2 * LARGE as i64, LARGE as i64, 0, 0, 0]);
    assert_eq!(app.count("coverages").await, 2 * (LARGE as i64 + 3));
}

on_both_databases!(
    organisations_take_turns,
    a_household_posted_again_with_someone_elses_national_id_fails,
    a_full_spool_refuses_uploads_until_jobs_read_them,
    an_upload_that_goes_silent_is_cut_and_gives_its_room_back,
    member_numbers_ignore_case_in_files,
    a_national_id_of_someone_else_fails_its_household,
    a_taken_number_fails_its_household_before_any_match,
    a_stopping_replica_hands_its_job_back_and_it_resumes,
    a_csv_file_with_its_columns_in_any_order_completes,
    a_bad_header_or_query_creates_nothing,
    a_bad_line_fails_its_household_only,
    a_file_not_in_utf8_registers_nothing,
    mangled_cells_fail_their_household,
    a_french_spreadsheet_export_reads_as_the_clerk_sees_it,
    a_split_household_is_registered_whole_or_not_at_all,
    a_quote_left_open_or_a_cut_last_row_fails_only_its_household,
    storage_conflicts_point_at_the_member_at_fault,
    a_household_posted_again_reports_the_members_it_lacks,
    a_household_posted_again_with_another_identity_fails,
    a_deactivated_mutuelles_jobs_stop,
    json_lines_with_good_and_bad_lines,
    only_its_mutuelle_operators_and_auditors_read_a_job,
    uploads_have_their_own_size_limit,
    a_crash_midway_then_the_same_file_again_completes_it,
    look_alikes_are_reported_not_merged,
    leftover_uploads_are_removed,
    uploads_that_survive_a_long_restart_are_processed,
);

/// Connections to PostgreSQL cut while a job runs (a reset, a failover) neither fail the job nor
/// leave it to the sweeper: a write that failed whole is tried again, and a group whose commit's
/// answer was lost sends the job back to the queue, to resume from the progress that was stored.
/// (SQLite has no connection to lose.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_goes_on_when_its_database_connections_are_cut() {
    const HOUSEHOLDS: usize = 6000;
    let proxy = passerelle_tests::proxy::Proxy::start("127.0.0.1:5432").await;
    let db = TestDatabase::new(Backend::Postgres).await;
    let mut config = test_config(&db.url.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port)));
    // The sweeper would resume a job stalled this long: it must not be what saves this one.
    config.batch_stale_after = Duration::from_secs(600);
    let app = TestApp::start(db, config).await;
    app.create_org("mut-a", "mutuelle", "TG").await;
    let product = app
        .post("/v1/products", &writer(&app, "mut-a"), &family_plan("2026-01-01"))
        .await;
    let query = format!("?product={}", product.json["id"].as_str().unwrap());
    let reply = upload(&app, "mut-a", Some("k1"), &query, CSV, households(HOUSEHOLDS, "CUT")).await;
    assert_eq!(reply.status.as_u16(), 202, "{}", reply.text);
    let location = reply.header("location").unwrap().to_owned();
    // A request meeting a connection the cut broke is 503, as a client is told to retry.
    let read = || async {
        for _ in 0..100 {
            let reply = app.get(&location, &writer(&app, "mut-a")).await;
            if reply.status.as_u16() != 503 {
                assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
                return reply.json;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the job cannot be read");
    };
    let created = |job: &Value| job["households_created"].as_i64().unwrap_or(0);
    let mut last = 0;
    for cut in 0..3 {
        // Each cut once the job has moved on since the last one.
        let mut job = Value::Null;
        for _ in 0..3000 {
            job = read().await;
            if created(&job) > last {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Running, or handed back a moment ago after a commit whose answer a cut lost.
        assert!(
            job["status"] == "running" || job["status"] == "queued",
            "cut {cut} comes while the job runs: {job}"
        );
        last = created(&job);
        proxy.cut();
        tokio::time::sleep(Duration::from_millis(400)).await;
        proxy.restore();
    }
    let mut job = read().await;
    // A minute at most: the sweeper, which would resume a stalled job, waits ten.
    for _ in 0..600 {
        if job["status"] != "running" && job["status"] != "queued" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        job = read().await;
    }
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["households_created"], HOUSEHOLDS as i64, "{job}");
    assert_eq!(job["rows_failed"], 0, "{job}");
    assert_eq!(job["rows_processed"], 2 * HOUSEHOLDS as i64, "{job}");
    assert_eq!(
        app.count("coverages").await,
        2 * HOUSEHOLDS as i64,
        "no household twice"
    );
    assert_eq!(app.count("beneficiaries").await, 2 * HOUSEHOLDS as i64);
    let verify = app.get("/v1/audit-events/verify", &app.operator()).await;
    assert_eq!(verify.json["valid"], true, "{}", verify.text);
}

/// A group's commit that reaches the database while its answer is lost (the connection drops
/// between them) leaves the worker unable to tell whether the group was written: the job is
/// handed back to the queue at once and resumes from its stored progress, neither stalling until
/// the sweeper nor writing a household twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_commit_answer_is_lost_resumes_from_what_was_written() {
    const HOUSEHOLDS: usize = 3000;
    let proxy = passerelle_tests::proxy::Proxy::start("127.0.0.1:5432").await;
    let db = TestDatabase::new(Backend::Postgres).await;
    // In clear, so that the proxy can tell a COMMIT.
    let url = db.url.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    let separator = if url.contains('?') { '&' } else { '?' };
    let mut config = test_config(&format!("{url}{separator}sslmode=disable"));
    // The sweeper would resume a job stalled this long: it must not be what saves this one.
    config.batch_stale_after = Duration::from_secs(600);
    let app = TestApp::start(db, config).await;
    app.create_org("mut-a", "mutuelle", "TG").await;
    let product = app
        .post("/v1/products", &writer(&app, "mut-a"), &family_plan("2026-01-01"))
        .await;
    let query = format!("?product={}", product.json["id"].as_str().unwrap());
    // Only a group's transaction sends this much: the chainer's, a heartbeat's and the requests'
    // are far smaller.
    proxy.lose_next_commit_answer(64 * 1024);
    let reply = upload(&app, "mut-a", Some("k1"), &query, CSV, households(HOUSEHOLDS, "LOST")).await;
    assert_eq!(reply.status.as_u16(), 202, "{}", reply.text);
    let location = reply.header("location").unwrap().to_owned();
    let mut job = Value::Null;
    // A minute at most: the sweeper, which would resume a stalled job, waits ten.
    for _ in 0..600 {
        let reply = app.get(&location, &writer(&app, "mut-a")).await;
        if reply.status.as_u16() == 200 {
            job = reply.json;
            if job["status"] != "running" && job["status"] != "queued" {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(proxy.commits_lost(), 1, "a group's commit answer was lost: {job}");
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["households_created"], HOUSEHOLDS as i64, "{job}");
    assert_eq!(job["rows_failed"], 0, "{job}");
    assert_eq!(job["rows_processed"], 2 * HOUSEHOLDS as i64, "{job}");
    assert_eq!(
        app.count("coverages").await,
        2 * HOUSEHOLDS as i64,
        "no household twice"
    );
    assert_eq!(app.count("beneficiaries").await, 2 * HOUSEHOLDS as i64);
    let verify = app.get("/v1/audit-events/verify", &app.operator()).await;
    assert_eq!(verify.json["valid"], true, "{}", verify.text);
}

/// A client that hangs up while its upload's job commits leaves a job that runs: the job's row
/// and its file are kept together whatever becomes of the request. The handler, dropped with
/// the connection between the commit and its answer, deleted the file of the job it had just
/// committed, and the retry with the same key replayed a job that could never run (from a
/// review of dropped handlers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_abandoned_while_its_job_commits_still_runs() {
    use tokio::io::AsyncWriteExt;
    const HOLD: Duration = Duration::from_millis(1500);
    let proxy = passerelle_tests::proxy::Proxy::start("127.0.0.1:5432").await;
    let db = TestDatabase::new(Backend::Postgres).await;
    // In clear, so that the proxy can tell a COMMIT.
    let url = db.url.replace("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port));
    let separator = if url.contains('?') { '&' } else { '?' };
    let app = TestApp::start(db, test_config(&format!("{url}{separator}sslmode=disable"))).await;
    app.create_org("mut-a", "mutuelle", "TG").await;
    let product = app
        .post("/v1/products", &writer(&app, "mut-a"), &family_plan("2026-01-01"))
        .await;
    let query = format!("?product={}", product.json["id"].as_str().unwrap());
    proxy.delay_next_commit_answer(b"INSERT INTO registration_batches", HOLD);
    let body = households(3, "KEPT");
    let head = format!(
        "POST /v1/registrations/batches{query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: {CSV}\r\nIdempotency-Key: k1\r\nContent-Length: {}\r\n\r\n",
        writer(&app, "mut-a"),
        body.len()
    );
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    for _ in 0..500 {
        if proxy.commits_delayed() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(proxy.commits_delayed(), 1, "the job's commit was held");
    // Gone while the commit's answer is on its way, the way a client's own timeout drops a
    // connection (a reset).
    #[allow(deprecated)]
    stream.set_linger(Some(Duration::ZERO)).unwrap();
    drop(stream);
    tokio::time::sleep(HOLD + Duration::from_millis(500)).await;
    let retried = upload(&app, "mut-a", Some("k1"), &query, CSV, households(3, "KEPT")).await;
    assert_eq!(retried.status.as_u16(), 202, "the first upload's job: {}", retried.text);
    let location = retried.header("location").unwrap().to_owned();
    let job = finished(&app, "mut-a", &location).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["households_created"], 3, "{job}");
    assert_eq!(app.count("coverages").await, 6, "each household once");
}
