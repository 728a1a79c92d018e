use std::io::{self, Read, Seek, SeekFrom};

use super::*;
use crate::beneficiary::parse_date;
use crate::coverage::Relationship;
use crate::eligibility::BirthDatePrecision;
use crate::product::Layer;

fn today() -> NaiveDate {
    parse_date("2026-03-15").unwrap()
}

fn product(max_dependants: Option<u32>, child_max_age: Option<u32>) -> ProductVersion {
    ProductVersion {
        product_id: "prod-segou".into(),
        organization: "mut-segou".into(),
        layer: Layer::Primary,
        name: "Mutuelle de Ségou".into(),
        rules: vec![],
        annual_ceiling_xof: None,
        waiting_period_days: 0,
        grace_period_days: 0,
        excluded_categories: vec![],
        max_dependants,
        child_max_age,
        effective_from: parse_date("2024-01-01").unwrap(),
        version: 1,
    }
}

const HEADER: &str = "household,relationship,member_number,family_name,given_names,sex,birth_date,national_id,phone,region,district,commune,start_date,paid_through\n";

/// The columns in another order, a byte order mark, CRLF line ends, quoted commas and
/// doubled quotes, and a year-only birth.
const GOOD: &str = "\u{FEFF}relationship,Household,family_name,given_names,sex,birth_date,national_id,phone,region,district,commune,member_number,start_date,paid_through\r\n\
principal,H1,Mensah,Kofi,M,1980-04-12,tg:niu:1234 5678 9012,+228 90 12 34 56,Maritime,Zio,Tsévié,TSV-0042,2026-01-01,2026-12-31\r\n\
spouse,H1,\"Mensah \"\"Mama\"\"\",\"Afi, Délali\",F,1984,,,,,,,,\r\n\
child,H1,Mensah,Yao,M,2015-09-30,,,,,,TSV-0042-2,2026-01-01,\r\n\
principal,H2,Traoré,\"Awa Mariam\",F,1975,ML:NINA:12345678901234K,,Ségou,Ségou,Pelengana,SGU-1,2026-02-01,\r\n\
child,H2,Traoré,Bakary,M,2012,,,,,,,,\r\n\
principal,H3,Ndiaye,Aïssatou,F,1990-07-07,,,,,,THS-7,2026-01-01,\r\n";

fn csv(text: &[u8]) -> Vec<HouseholdItem> {
    CsvHouseholds::new(io::Cursor::new(text)).unwrap().collect()
}

fn codes(errors: &[RowError]) -> Vec<(u64, &str, &str)> {
    errors
        .iter()
        .map(|e| (e.row, e.field.as_str(), e.code.as_str()))
        .collect()
}

fn failure(item: &HouseholdItem) -> &HouseholdFailure {
    item.as_ref().err().unwrap()
}

#[test]
fn households_are_read_from_any_column_order_with_rfc4180_quoting() {
    let mut reader = CsvHouseholds::new(io::Cursor::new(GOOD)).unwrap();
    let h1 = reader.next().unwrap().unwrap();
    assert_eq!(reader.rows_read(), 4, "the first row of H2 was read to end H1");
    let h2 = reader.next().unwrap().unwrap();
    let h3 = reader.next().unwrap().unwrap();
    assert!(reader.next().is_none());
    assert_eq!(reader.rows_read(), 6);
    assert!(reader.take_error().is_none());

    assert_eq!((h1.household.as_str(), h1.first_row, h1.rows), ("H1", 2, 3));
    assert_eq!(h1.member_rows, [2, 3, 4]);
    assert_eq!(h1.draft.product, None);
    assert_eq!(
        h1.draft.dependants[0].beneficiary.family_name.as_deref(),
        Some("Mensah \"Mama\"")
    );
    assert_eq!(
        h1.draft.dependants[0].beneficiary.given_names.as_deref(),
        Some("Afi, Délali")
    );
    let r = h1.validate(&product(None, Some(18)), today()).unwrap();
    assert_eq!(r.member_number.as_str(), "TSV-0042");
    assert_eq!(r.paid_through, parse_date("2026-12-31"));
    assert_eq!(r.principal.national_id.unwrap().to_compact(), "TG:NIU:123456789012");
    assert_eq!(r.principal.phone.as_deref(), Some("+22890123456"));
    assert_eq!(r.principal.locality.unwrap().commune, "Tsévié");
    assert_eq!(r.dependants[0].relationship, Relationship::Spouse);
    assert_eq!(
        r.dependants[0].beneficiary.birth_date_precision,
        BirthDatePrecision::Year
    );
    assert_eq!(r.dependants[0].member_number, None);
    assert_eq!(r.dependants[1].member_number.as_ref().unwrap().as_str(), "TSV-0042-2");

    assert_eq!((h2.first_row, h2.rows, h2.member_rows.clone()), (5, 2, vec![5, 6]));
    assert_eq!(h2.draft.principal.given_names.as_deref(), Some("Awa Mariam"));

    assert_eq!((h3.first_row, h3.rows), (7, 1));
    assert_eq!(
        h3.validate(&product(None, None), today())
            .unwrap()
            .principal
            .given_names,
        "Aïssatou"
    );
}

/// A spreadsheet in a French locale saves "CSV" with semicolons: the header's separator decides,
/// and a comma in a cell is then just a comma.
#[test]
fn a_file_separated_by_semicolons_reads_as_the_same_file_with_commas() {
    let text = GOOD.trim_start_matches('\u{FEFF}');
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut writer = ::csv::WriterBuilder::new()
        .delimiter(b';')
        .terminator(::csv::Terminator::CRLF)
        .from_writer(b"\xEF\xBB\xBF".to_vec());
    for record in reader.records() {
        writer.write_record(&record.unwrap()).unwrap();
    }
    let semicolons = writer.into_inner().unwrap();
    let as_text = String::from_utf8(semicolons.clone()).unwrap();
    assert!(as_text.contains(";Afi, Délali;"), "{as_text}");
    let read = |bytes: &[u8]| format!("{:?}", csv(bytes));
    assert_eq!(read(&semicolons), read(GOOD.as_bytes()));
    assert_eq!(csv(&semicolons).len(), 3);
    assert!(check_csv_header(io::Cursor::new(&semicolons)).is_ok());
    // A row of such a file with a field too many is reported as in a comma file.
    let short = format!(
        "{}H9;principal;X-1;A;B;F;1990;;;;;;2026-01-01;;extra\n",
        HEADER.replace(',', ";")
    );
    let failed = csv(short.as_bytes());
    assert_eq!(codes(&failure(&failed[0]).errors), [(2, "", "wrong_field_count")]);
    // A one-column header is still a header whose columns are missing, not read as semicolons.
    assert!(check_csv_header(io::Cursor::new("household\n")).is_err());
}

/// A Macintosh "CSV" ends its lines with a lone `\r`: read as any other, never as one long
/// header naming every cell.
#[test]
fn carriage_returns_alone_end_lines() {
    let mac = GOOD.replace("\r\n", "\r");
    assert_eq!(check_csv_header(mac.as_bytes()), Ok(b','));
    assert_eq!(
        format!("{:?}", csv(mac.as_bytes())),
        format!("{:?}", csv(GOOD.as_bytes()))
    );
    // `\r\n` split across reads is still one line end.
    let mut reader = CsvHouseholds::new(io::BufReader::with_capacity(7, io::Cursor::new(GOOD))).unwrap();
    assert_eq!(reader.by_ref().count(), 3);
    assert_eq!(reader.rows_read(), 6);
    // A header cell holding a line break is named as such, not as missing columns.
    let broken = HEADER.replace("given_names", "\"given_names\n(prénoms)\"");
    let errors = check_csv_header(broken.as_bytes()).err().unwrap();
    assert_eq!(
        errors
            .iter()
            .map(|e| (e.field.as_str(), e.code.as_str()))
            .collect::<Vec<_>>(),
        [("/header", "unclosed_quote")]
    );
    // A header of thousands of made-up names names twenty of them and counts the others (each
    // once: `zz` twice is one).
    let made_up: Vec<String> = (0..5_000).map(|i| format!("c{i}")).collect();
    let wide = format!("{},zz,zz,{}\n", HEADER.trim_end(), made_up.join(","));
    let errors = check_csv_header(wide.as_bytes()).err().unwrap();
    assert_eq!(errors.len(), 21, "{errors:?}");
    assert_eq!(errors[0].field, "/header/zz");
    assert!(errors[..20].iter().all(|e| e.code == "unknown_column"));
    assert_eq!(errors[20].field, "/header");
    assert_eq!(errors[20].code, "too_many_errors");
    assert!(errors[20].en.starts_with("4981 more faults"), "{}", errors[20].en);
    // A first line past the longest record is no header: said as such, not as the disk's fault.
    let long = format!("household,{}\n", "x".repeat(MAX_CSV_RECORD_BYTES as usize));
    let errors = check_csv_header(long.as_bytes()).err().unwrap();
    assert_eq!(
        errors
            .iter()
            .map(|e| (e.field.as_str(), e.code.as_str()))
            .collect::<Vec<_>>(),
        [("/header", "line_too_long")]
    );
}

#[test]
fn line_ends_do_not_change_rows() {
    let summary = |text: &str| -> Vec<(String, u64, u64, Vec<u64>)> {
        csv(text.as_bytes())
            .into_iter()
            .map(|item| {
                let h = item.unwrap();
                (h.household, h.first_row, h.rows, h.member_rows)
            })
            .collect()
    };
    let crlf = summary(GOOD);
    assert_eq!(summary(&GOOD.replace("\r\n", "\n")), crlf);
    assert_eq!(crlf[1], ("H2".to_owned(), 5, 2, vec![5, 6]));
    // A quoted last cell before CRLF reads without its `\r`.
    let file = format!(
        "{}H1,principal,TSV-1,Mensah,Kofi,M,1980,,,,,,2026-01-01,\"2026-06-30\"\r\n",
        HEADER.replace('\n', "\r\n")
    );
    let h = csv(file.as_bytes()).remove(0).unwrap();
    assert_eq!(h.draft.paid_through.as_deref(), Some("2026-06-30"));
}

#[test]
fn header_problems_are_one_error_per_column() {
    let header = "household,relationship,member_number,family_name,given_names,sex,birth_date,national_id,phone,region,district,commune,start_date,start_date,paid_to,start_date,paid_to\n";
    let errors = check_csv_header(header.as_bytes()).err().unwrap();
    let found: Vec<_> = errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
    assert_eq!(
        found,
        [
            ("/header/start_date", "duplicate_column"),
            ("/header/paid_to", "unknown_column"),
            ("/header/paid_through", "missing_column"),
        ]
    );
    assert!(errors.iter().all(|e| !e.en.is_empty() && !e.fr.is_empty()));

    let pairs = |errors: &[crate::error::FieldError]| -> Vec<(String, String)> {
        errors.iter().map(|e| (e.field.clone(), e.code.clone())).collect()
    };
    let one = |field: &str, code: &str| vec![(field.to_owned(), code.to_owned())];
    // An empty file, or a blank first line, has no header: one error, not fourteen missing
    // columns.
    let errors = check_csv_header(&b""[..]).err().unwrap();
    assert_eq!(pairs(&errors), one("/header", "no_header"));
    assert!(errors[0].en.starts_with("the file is empty"), "{}", errors[0].en);
    for blank in [&b"\n"[..], &b",,,\r\n"[..], &b"\xEF\xBB\xBF\n"[..]] {
        let errors = check_csv_header(blank).err().unwrap();
        assert_eq!(pairs(&errors), one("/header", "no_header"));
        assert!(
            errors[0].fr.starts_with("la première ligne est vide"),
            "{}",
            errors[0].fr
        );
    }
    // A file without its header row: one error for the line, none repeating a cell.
    let data = "H1,principal,M-1,Amégbé,Kodjo,M,1980,TG:NIU:9000 0000 0101,+22890000101,Maritime,Zio,Tsévié,2026-01-01,2026-12-31\n";
    let errors = check_csv_header(data.as_bytes()).err().unwrap();
    assert_eq!(pairs(&errors), one("/header", "no_header"));
    for cell in ["Amégbé", "Kodjo", "9000", "+228"] {
        assert!(!errors[0].en.contains(cell) && !errors[0].fr.contains(cell), "{cell}");
    }
    // JSON lines sent as CSV are named as such.
    let errors = check_csv_header(&br#"{"household": "H1", "members": []}"#[..])
        .err()
        .unwrap();
    assert_eq!(pairs(&errors), one("/header", "no_header"));
    assert!(errors[0].en.contains("application/x-ndjson"), "{}", errors[0].en);
    // Excel's separator hint before the header is named as such, whatever the separator.
    for hint in [
        &b"sep=;\r\nhousehold;relationship\r\n"[..],
        &b"\xEF\xBB\xBFSEP=,\nhousehold\n"[..],
    ] {
        let errors = check_csv_header(hint).err().unwrap();
        assert_eq!(pairs(&errors), one("/header", "no_header"));
        assert!(errors[0].en.contains("separator hint"), "{}", errors[0].en);
    }
    // A tab-separated export is named as such.
    let tabbed = HEADER.replace(',', "\t");
    let errors = check_csv_header(format!("{tabbed}\r\n").as_bytes()).err().unwrap();
    assert_eq!(pairs(&errors), one("/header", "no_header"));
    assert!(errors[0].en.contains("tabs"), "{}", errors[0].en);
    // One known column is enough to read the line as a header with mistakes.
    let errors = check_csv_header(&b"household,nom,prenom\n"[..]).err().unwrap();
    assert!(pairs(&errors).contains(&one("/header/nom", "unknown_column")[0]));
    // Split at semicolons, a header of two known columns lacks the twelve others.
    let errors = check_csv_header(&b"household;relationship\n"[..]).err().unwrap();
    assert_eq!(errors.len(), 12);
    assert_eq!(
        (errors[0].field.as_str(), errors[0].code.as_str()),
        ("/header/member_number", "missing_column")
    );

    let latin1 = [&b"household,relationship,r\xE9gion"[..], &HEADER.as_bytes()[22..]].concat();
    let errors = check_csv_header(latin1.as_slice()).err().unwrap();
    assert_eq!(
        (errors[0].field.as_str(), errors[0].code.as_str()),
        ("/header", "invalid_encoding")
    );
}

/// PostgreSQL's text cannot hold a NUL: a cell or a JSON line carrying one fails its own
/// household, named, and never reaches a statement.
#[test]
fn a_nul_character_fails_its_household_only() {
    let mut file = HEADER.as_bytes().to_vec();
    file.extend_from_slice(b"H1,principal,SGU-1,Traore,Awa,F,1975,,,S\x00gou,,,2026-01-01,\n");
    file.extend_from_slice(b"H2,principal,SGU-2,Coulibaly,Moussa,M,1969,,,,,,2026-01-01,\n");
    file.extend_from_slice(b"H\x003,principal,SGU-3,Diarra,Sali,F,1971,,,,,,2026-01-01,\n");
    let items = csv(&file);
    assert_eq!(items.len(), 3);
    assert_eq!(codes(&failure(&items[0]).errors), [(2, "region", "invalid_character")]);
    assert!(items[1].is_ok());
    // In the household column too; and the household's label, written with each of its
    // errors, does not carry the NUL on.
    let third = failure(&items[2]);
    assert_eq!(codes(&third.errors), [(4, "household", "invalid_character")]);
    assert!(!third.household.contains('\0') && third.errors.iter().all(|e| !e.household.contains('\0')));

    let lines = "{\"member_number\": \"A\\u0000\", \"start_date\": \"2026-01-01\"}\n{\"member_number\": \"B\"}\n";
    let items: Vec<_> = NdjsonHouseholds::new(lines.as_bytes(), None).collect();
    assert_eq!(items.len(), 2);
    assert_eq!(
        codes(&failure(&items[0]).errors),
        [(1, "/member_number", "invalid_character")]
    );
    assert!(items[1]
        .as_ref()
        .map_or_else(|f| f.errors.iter().all(|e| e.code != "invalid_character"), |_| true));
}

#[test]
fn a_line_not_in_utf8_fails_the_whole_file() {
    let mut file = HEADER.as_bytes().to_vec();
    file.extend_from_slice(b"H1,principal,SGU-1,Traore,Awa,F,1975,,,,,,2026-01-01,\n");
    // Windows-1252's `É` and no-break space: valid UTF-8 by chance (`ɠ`).
    file.extend_from_slice(b"H2,principal,SGU-2,KONAT\xC9\xA0,Siaka,M,1968,,,,,,2026-01-01,\n");
    file.extend_from_slice(b"H2,child,,Traore,Bakary,M,2012,,,S\xE9gou,S\xE9gou,Pelengana,,\n");
    let mut reader = CsvHouseholds::new(io::Cursor::new(file)).unwrap();
    assert_eq!(reader.by_ref().count(), 0, "no household of the file is read");
    let e = reader.take_error().unwrap();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    let not_utf8 = e.get_ref().and_then(|inner| inner.downcast_ref::<NotUtf8>());
    assert_eq!(not_utf8, Some(&NotUtf8 { line: 4 }), "the first line that is not UTF-8");
    assert_eq!(not_utf8.unwrap().failure().code, "invalid_encoding");
}

#[test]
fn a_cut_last_line_is_truncated_and_other_short_rows_are_miscounted() {
    let body = "H1,principal,TSV-1,Mensah,Kofi,M,1980,,,,,,2026-01-01,\nH1,child,,Mensah,Yao,M,20";
    let items = csv(format!("{HEADER}{body}").as_bytes());
    assert_eq!(codes(&failure(&items[0]).errors), [(3, "", "truncated")]);
    assert_eq!(failure(&items[0]).rows, 2);

    // The same short row with its line end, or in the middle: the wrong field count.
    let items = csv(format!("{HEADER}{body}\n").as_bytes());
    assert_eq!(codes(&failure(&items[0]).errors), [(3, "", "wrong_field_count")]);
    let body = "H1,principal,TSV-1,Mensah,Kofi,M,1980,,,,,,2026-01-01\nH2,principal,TSV-2,Ba,Awa,F,1980,,,,,,2026-01-01,,extra\nH3,principal,TSV-3,Sow,Ali,M,1980,,,,,,2026-01-01,2026-12-31";
    let items = csv(format!("{HEADER}{body}").as_bytes());
    assert_eq!(codes(&failure(&items[0]).errors), [(2, "", "wrong_field_count")]);
    assert_eq!(codes(&failure(&items[1]).errors), [(3, "", "wrong_field_count")]);
    assert!(items[2].is_ok(), "a complete last line without a line end is fine");
    // Every field, the last one empty (a dependant's `paid_through`), and no line end: read.
    let body = "H3,principal,TSV-3,Sow,Ali,M,1980,,,,,,2026-01-01,";
    assert!(csv(format!("{HEADER}{body}").as_bytes())[0].is_ok());
    assert!(csv(format!("{HEADER}{body}\n").as_bytes())[0].is_ok());
    assert!(
        csv(format!("{HEADER}{body}\r").as_bytes())[0].is_ok(),
        "an old Mac line end"
    );
    // A last line too short to name its household stays with the one being read (GOOD's
    // household is its second column).
    let items = csv(format!("{GOOD}chi").as_bytes());
    assert_eq!(items.len(), 3);
    let h3 = failure(&items[2]);
    assert_eq!((h3.household.as_str(), h3.rows), ("H3", 2));
    assert_eq!(codes(&h3.errors), [(8, "", "truncated")]);
}

/// One household's key, written composed on one row and decomposed on the next, is one key.
#[test]
fn a_household_key_reads_the_same_composed_or_not() {
    let body = "Ménage-É1,principal,TSV-1,Ba,Awa,F,1980,,,,,,2026-01-01,\nMe\u{301}nage-E\u{301}1,child,,Ba,Fatou,F,2016,,,,,,,\n";
    let items = csv(format!("{HEADER}{body}").as_bytes());
    assert_eq!(items.len(), 1, "one household");
    assert!(items[0].is_ok(), "{:?}", items[0]);
}

#[test]
fn households_must_be_contiguous_and_start_with_the_principal() {
    let body = "\
H1,child,,Mensah,Yao,M,2015,,,,,,,
H2,principal,TSV-2,Ba,Awa,F,1980,,,,,,2026-01-01,
H3,principal,TSV-3,Sow,Ali,M,1980,,,,,,2026-01-01,
H2,child,,Ba,Fatou,F,2016,,,,,,,
H2,child,,Ba,Ousmane,M,2018,,,,,,,
";
    let items = csv(format!("{HEADER}{body}").as_bytes());
    assert_eq!(items.len(), 4);
    let first = failure(&items[0]);
    assert_eq!(codes(&first.errors), [(2, "relationship", "principal_first")]);
    // A relationship of the file's own on the first row is named as unknown.
    let own = csv(format!("{HEADER}H9,Chef de ménage,TSV-9,Ba,Awa,F,1980,,,,,,2026-01-01,\n").as_bytes());
    assert_eq!(codes(&failure(&own[0]).errors), [(2, "relationship", "unknown_value")]);
    assert!(first.unchecked.is_none());
    // H2 is met again after H3: its first run fails too, or H2 would be registered without
    // its children and, the file fixed and posted again, skipped as already registered.
    let h2 = failure(&items[1]);
    assert_eq!((h2.household.as_str(), h2.first_row, h2.rows), ("H2", 3, 1));
    assert_eq!(codes(&h2.errors), [(3, "household", "household_not_contiguous")]);
    assert!(
        h2.errors[0].message_en.contains("again at row 5"),
        "{}",
        h2.errors[0].message_en
    );
    assert!(h2.unchecked.is_some(), "its principal's row is still checked");
    assert!(items[2].is_ok());
    let again = failure(&items[3]);
    assert_eq!((again.household.as_str(), again.first_row, again.rows), ("H2", 5, 2));
    assert_eq!(codes(&again.errors), [(5, "household", "household_not_contiguous")]);
    assert!(again.errors[0].message_en.contains("already appeared at row 3"));
}

#[test]
fn every_run_of_a_split_household_fails_with_its_own_row_errors() {
    // H1 in three runs, the last one with a bad row; H1 written with a trailing no-break
    // space is the same household (cells and keys are trimmed alike), so H1 is one run.
    let body = "\
H1,principal,TSV-1,Mensah,Kofi,M,1980,,,,,,2026-01-01,
H1\u{A0},child,,Mensah,Yao,M,2015,,,,,,,
H2,principal,TSV-2,Ba,Awa,F,1980,,,,,,2026-01-01,
H3,principal,TSV-3,Sow,Ali,M,1980,,,,,,2026-01-01,
H3,child,,Sow,Ina,X,2016,,,,,,,
H2,child,,Ba,Fatou,F,2016,,,,,,,
H3,child,,Sow,Ali,M,2018,,,,,,,
H4,principal,TSV-4,Diop,Modou,M,1975,,,,,,2026-01-01,
";
    let items = csv(format!("{HEADER}{body}").as_bytes());
    let summary: Vec<_> = items
        .iter()
        .map(|i| match i {
            Ok(h) => (h.household.clone(), h.first_row, h.rows, Vec::new()),
            Err(f) => (
                f.household.clone(),
                f.first_row,
                f.rows,
                codes(&f.errors)
                    .iter()
                    .map(|(r, f, c)| format!("{r} {f} {c}"))
                    .collect(),
            ),
        })
        .collect();
    let row = |h: &str, first: u64, rows: u64, errors: &[&str]| {
        (
            h.to_owned(),
            first,
            rows,
            errors.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        summary,
        [
            row("H1", 2, 2, &[]),
            row("H2", 4, 1, &["4 household household_not_contiguous"]),
            row("H3", 5, 2, &["5 household household_not_contiguous"]),
            row("H2", 7, 1, &["7 household household_not_contiguous"]),
            row("H3", 8, 1, &["8 household household_not_contiguous"]),
            row("H4", 9, 1, &[]),
        ]
    );
    // The rule errors of each run are reported with it once completed.
    let h3 = items[2]
        .clone()
        .unwrap_err()
        .complete(&NationalIdRules::SHIPPED, Some(&product(None, None)), today());
    assert_eq!(
        codes(&h3.errors),
        [
            (5, "household", "household_not_contiguous"),
            (6, "sex", "unknown_value")
        ]
    );
}

#[test]
fn principal_row_values_hold_for_the_household() {
    let body = "\
H1,principal,TSV-1,Mensah,Kofi,M,1980,TG:NIU,,,,,2026-01-01,2026-06-30
H1,child,,Mensah,Yao,M,2015,,,,,,2026-01-01,2026-06-30
H1,child,,Mensah,Ama,F,2017,,,Maritime,,,2026-02-01,
";
    let items = csv(format!("{HEADER}{body}").as_bytes());
    let f = failure(&items[0]).clone();
    assert_eq!(
        codes(&f.errors),
        [
            (2, "national_id", "invalid_national_id"),
            (4, "start_date", "conflicts_with_principal")
        ]
    );
    // Completing the failure adds what the rules find, once per row and field.
    let f = f.complete(&NationalIdRules::SHIPPED, Some(&product(Some(1), None)), today());
    assert_eq!(
        codes(&f.errors),
        [
            (2, "national_id", "invalid_national_id"),
            (2, "household", "too_many_dependants"),
            (4, "start_date", "conflicts_with_principal"),
            (4, "district", "incomplete_locality"),
            (4, "commune", "incomplete_locality"),
        ]
    );
    assert!(f.unchecked.is_none());
}

#[test]
fn rule_errors_point_at_the_member_row_and_column() {
    let body = "\
H1,principal,TSV-1,Mensah,Kofi,M,1980-04-12,,,,,,2026-01-01,
H1,child,TSV-1,Mensah,Yao,X,2010-01-01,,+228,,,,,
H1,child,,MENSAH,kofi,M,1980-04-12,TG:NIU:1,,,,,,
H1,cousin,,Mensah,Ama,F,2090,,,,,,,
";
    let items = csv(format!("{HEADER}{body}").as_bytes());
    let rows = items[0].clone().unwrap();
    let f = rows.validate(&product(None, Some(12)), today()).unwrap_err();
    assert_eq!(
        codes(&f.errors),
        [
            (3, "member_number", "duplicate"),
            (3, "sex", "unknown_value"),
            (3, "phone", "invalid_phone"),
            (4, "national_id", "invalid_national_id"),
            (5, "relationship", "unknown_value"),
            (5, "birth_date", "birth_date_in_future"),
        ]
    );
    let body = "\
H1,principal,TSV-1,Mensah,Kofi,M,1980-04-12,,,,,,2026-01-01,
H1,child,,Mensah,Yao,M,2010-01-01,,,,,,,
H1,other,,MENSAH,kofi,M,1980-04-12,,,,,,,
";
    let rows = csv(format!("{HEADER}{body}").as_bytes()).remove(0).unwrap();
    let f = rows.validate(&product(Some(1), Some(12)), today()).unwrap_err();
    assert_eq!(
        codes(&f.errors),
        [
            (2, "household", "too_many_dependants"),
            (3, "birth_date", "dependant_age_limit"),
            (4, "family_name", "duplicate_member"),
        ]
    );
    // Storage's own verdicts are placed the same way.
    let rows = csv(format!("{HEADER}{body}").as_bytes()).remove(0).unwrap();
    let taken = FieldError::new("/member_number", "member_number_taken", "taken", "pris");
    assert_eq!(
        codes(&rows.failure(&[taken]).errors),
        [(2, "member_number", "member_number_taken")]
    );
}

#[test]
fn blank_rows_are_skipped_and_rows_are_counted() {
    let body = "\n,,,,,,,,,,,,,\nH1,principal,TSV-1,Mensah,Kofi,M,1980,,,,,,2026-01-01,\n\n  ,, ,,,,,,,,,,,\nH1,child,,Mensah,Yao,M,2015,,,,,,,\n";
    let file = format!("{HEADER}{body}");
    let mut reader = CsvHouseholds::new(io::Cursor::new(file)).unwrap();
    let h1 = reader.next().unwrap().unwrap();
    assert_eq!(h1.rows, 2);
    assert_eq!(h1.member_rows, [4, 7]);
    assert!(reader.next().is_none());
    assert_eq!(reader.rows_read(), 2);
}

#[test]
fn an_oversized_household_is_bounded() {
    let mut file = String::from(HEADER);
    file.push_str("H1,principal,TSV-1,Mensah,Kofi,M,1980,,,,,,2026-01-01,\n");
    for i in 0..150 {
        file.push_str(&format!("H1,child,,Mensah,Enfant {i},M,2015,,,,,,,\n"));
    }
    file.push_str("H2,principal,TSV-2,Ba,Awa,F,1980,,,,,,2026-01-01,\n");
    let items = csv(file.as_bytes());
    let f = failure(&items[0]);
    assert_eq!(f.rows, 151);
    assert_eq!(codes(&f.errors), [(103, "household", "too_many_dependants")]);
    assert_eq!(f.unchecked.as_ref().unwrap().draft.dependants.len(), MAX_DEPENDANTS);
    assert!(items[1].is_ok());
}

/// Gives `limit` bytes in all (both reads of the file), then fails, as a broken disk would.
struct Broken<'a> {
    data: &'a [u8],
    at: usize,
    limit: usize,
}

impl Read for Broken<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.limit == 0 {
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, "gone"));
        }
        let n = buf.len().min(self.limit).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        self.limit -= n;
        Ok(n)
    }
}

impl Seek for Broken<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let at = match to {
            SeekFrom::Start(at) => usize::try_from(at).map_err(io::Error::other)?,
            SeekFrom::Current(by) => self
                .at
                .checked_add_signed(isize::try_from(by).map_err(io::Error::other)?)
                .ok_or_else(|| io::Error::other("before the start"))?,
            SeekFrom::End(_) => return Err(io::Error::other("not from the end")),
        };
        self.at = at.min(self.data.len());
        Ok(self.at as u64)
    }
}

/// A reader that counts the bytes read from it.
struct Counted {
    inner: io::Cursor<Vec<u8>>,
    read: std::rc::Rc<std::cell::Cell<usize>>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n);
        Ok(n)
    }
}

impl Seek for Counted {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.inner.seek(to)
    }
}

/// Lines with a forgotten quote are each read ahead, then read again from the buffer: the file
/// is read about twice (two passes), not once more for each such line (a 2 MiB file of them took
/// 4.5 s, every rewind reading 256 KiB again).
#[test]
fn forgotten_quotes_do_not_read_the_file_again() {
    let mut text = HEADER.to_owned();
    for i in 0..2_000 {
        text.push_str(&format!("H{i},principal,\"x\n"));
    }
    let len = text.len();
    let read = std::rc::Rc::new(std::cell::Cell::new(0));
    let reader = CsvHouseholds::new(Counted {
        inner: io::Cursor::new(text.into_bytes()),
        read: read.clone(),
    })
    .unwrap();
    assert_eq!(reader.count(), 2_000);
    let read = read.get();
    assert!(read <= 3 * len, "{read} bytes read for {len}");
}

#[test]
fn a_read_failure_stops_the_job_without_a_half_household() {
    let text = GOOD.replace("\r\n", "\n");
    let cut = text.find("principal,H3").unwrap() - 5;
    // Failing during the first read (split households): nothing is returned at all.
    let broken = Broken {
        data: text.as_bytes(),
        at: 0,
        limit: cut,
    };
    let mut reader = CsvHouseholds::new(broken).unwrap();
    assert_eq!(reader.by_ref().count(), 0);
    assert_eq!(reader.take_error().unwrap().kind(), io::ErrorKind::ConnectionReset);
    // During the second: what was read whole is returned, not the household being read.
    let header = text.find('\n').unwrap() + 1;
    let broken = Broken {
        data: text.as_bytes(),
        at: 0,
        limit: text.len() + cut - header,
    };
    let mut reader = CsvHouseholds::new(broken).unwrap();
    let items: Vec<_> = reader.by_ref().collect();
    assert_eq!(items.len(), 1, "H1 only: H2 was still being read");
    assert_eq!(reader.take_error().unwrap().kind(), io::ErrorKind::ConnectionReset);

    // A line longer than any person's stops the job before anything is registered.
    let mut file = format!("{GOOD}H4,principal,TSV-4,Mensah,Kofi,M,1980,,,,,,2026-01-01,\n");
    file.push_str(&"x".repeat(3 << 20));
    let mut reader = CsvHouseholds::new(io::Cursor::new(file)).unwrap();
    assert!(reader.next().is_none());
    let e = reader.take_error().unwrap();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    let too_long = e.get_ref().and_then(|inner| inner.downcast_ref::<LineTooLong>());
    assert_eq!(too_long, Some(&LineTooLong { line: 9 }));
    let failure = too_long.unwrap().failure();
    assert_eq!(failure.code, "unreadable_file");
    assert!(
        failure.fr.contains("la ligne 9 dépasse") && !failure.fr.contains("longer"),
        "{}",
        failure.fr
    );
    assert!(failure.en.contains("line 9 is longer"), "{}", failure.en);
}

#[test]
fn a_quote_left_open_fails_its_row_and_swallows_nothing() {
    // A quote never closed on H1's child: the rows after it are read as they are, each on its
    // own line's number.
    let body = "\
H1,principal,TSV-1,Mensah,Kofi,M,1980,,,,,,2026-01-01,
H1,child,,\"Mensah,Yao,M,2015,,,,,,,
H2,principal,TSV-2,Ba,Awa,F,1980,,,,,,2026-01-01,
H2,child,,Ba,\"Fatou, dite \"\"Fa\"\"\",F,2016,,,,,,,
H3,principal,TSV-3,Sow,Ali,M,1980,,,,,,2026-01-01,
";
    let mut reader = CsvHouseholds::new(io::Cursor::new(format!("{HEADER}{body}"))).unwrap();
    let items: Vec<_> = reader.by_ref().collect();
    assert_eq!(reader.rows_read(), 5);
    assert_eq!(items.len(), 3);
    let h1 = failure(&items[0]);
    assert_eq!((h1.household.as_str(), h1.first_row, h1.rows), ("H1", 2, 2));
    assert_eq!(codes(&h1.errors), [(3, "family_name", "unclosed_quote")]);
    let h2 = items[1].clone().unwrap();
    assert_eq!(h2.member_rows, [4, 5]);
    assert_eq!(
        h2.draft.dependants[0].beneficiary.given_names.as_deref(),
        Some("Fatou, dite \"Fa\"")
    );
    assert_eq!(items[2].as_ref().unwrap().first_row, 6);

    // A quote forgotten where the lines after it would close it, but not into a row of the
    // header's width: nothing is swallowed either.
    let body = "H1,principal,TSV-1,\"Mensah,Kofi,M,1980,,,,,,2026-01-01,\nH2,principal,TSV-2,Ba,\"Awa\",F,1980,,,,,,2026-01-01,\n";
    let items = csv(format!("{HEADER}{body}").as_bytes());
    assert_eq!(
        codes(&failure(&items[0]).errors),
        [(2, "family_name", "unclosed_quote")]
    );
    assert_eq!(items[1].as_ref().unwrap().first_row, 3);

    // At the end of a file without a line end, the quote was cut.
    let items = csv(format!("{HEADER}H1,principal,TSV-1,Mensah,\"Ko").as_bytes());
    assert_eq!(codes(&failure(&items[0]).errors), [(2, "", "truncated")]);
}

#[test]
fn a_byte_order_mark_before_a_quoted_header_is_skipped() {
    let quoted: Vec<String> = CSV_COLUMNS.iter().map(|c| format!("\"{c}\"")).collect();
    let file = format!(
        "\u{FEFF}{}\r\nH1,principal,TSV-1,Mensah,Kofi,M,1980,,,,,,2026-01-01,\r\n",
        quoted.join(",")
    );
    assert_eq!(check_csv_header(file.as_bytes()), Ok(b','));
    let h1 = csv(file.as_bytes()).remove(0).unwrap();
    assert_eq!((h1.household.as_str(), h1.first_row), ("H1", 2));
}

#[test]
fn storage_verdicts_land_on_the_member_at_fault() {
    let body = "\
H1,principal,TSV-1,Mensah,Kofi,M,1980,,,,,,2026-01-01,
H1,spouse,,Mensah,Afi,F,1982,,,,,,,
H1,child,TSV-1-2,Mensah,Yao,M,2015,,,,,,,
";
    let rows = csv(format!("{HEADER}{body}").as_bytes()).remove(0).unwrap();
    let conflict = member_conflict("member_number_taken", 2);
    assert_eq!(split_member_conflict(&conflict), ("member_number_taken", Some(2)));
    assert_eq!(split_member_conflict("already_covered"), ("already_covered", None));
    let taken = FieldError::new("/member_number", "member_number_taken", "taken", "pris");
    let covered = FieldError::new("", "already_covered", "covered", "couvert");
    assert_eq!(
        codes(&rows.member_failure(2, &taken).errors),
        [(4, "member_number", "member_number_taken")]
    );
    assert_eq!(
        codes(&rows.member_failure(0, &taken).errors),
        [(2, "member_number", "member_number_taken")]
    );
    assert_eq!(
        codes(&rows.member_failure(1, &covered).errors),
        [(3, "", "already_covered")]
    );
    let f = rows.member_failure(1, &covered);
    assert_eq!((f.household.as_str(), f.first_row, f.rows), ("H1", 2, 3));
    // The whole household: no column.
    let contention = FieldError::new("", "concurrent_change", "again", "encore");
    assert_eq!(
        codes(&rows.failure(&[contention]).errors),
        [(2, "", "concurrent_change")]
    );

    let mut json = rows.clone();
    json.naming = FieldNaming::Pointers;
    json.member_rows = vec![7; 3];
    assert_eq!(
        codes(&json.member_failure(2, &taken).errors),
        [(7, "/dependants/1/member_number", "member_number_taken")]
    );
    assert_eq!(
        codes(&json.member_failure(0, &taken).errors),
        [(7, "/member_number", "member_number_taken")]
    );
    assert_eq!(
        codes(&json.member_failure(0, &covered).errors),
        [(7, "/principal", "already_covered")]
    );
}

const NDJSON: &str = r#"{"member_number": "SGU-1", "start_date": "2026-01-01", "principal": {"family_name": "Traoré", "given_names": "Awa", "sex": "F", "birth_date": "1975", "locality": {"region": "Ségou", "district": "Ségou", "commune": "Pelengana"}}, "dependants": [{"relationship": "child", "family_name": "Traoré", "given_names": "Bakary", "sex": "M", "birth_date": "2012-01-01", "birth_date_precision": "year"}]}

{"member_number": "SGU-2", "start_date": "2026-01-01", "principal": {"family_name": "Coulibaly"
{"product": "prod-other", "member_number": "SGU-3", "start_date": 20260101, "principal": {"family_name": "Diarra", "given_names": "Oumar", "sex": "M", "birth_date": "1970", "nickname": "Ouma"}}
[1, 2]
{"member_number": "SGU-5", "start_date": "2026-01-01", "principal": {"family_name": "Keita", "given_names": "Sira", "sex": "F", "birth_date": "1988-03-03"}, "dependants": [{"relationship": "child", "family_name": "Keita", "given_names": "Adama", "sex": "M", "birth_date": "2001-05-05"}]}
"#;

#[test]
fn ndjson_lines_are_households() {
    let mut file = NDJSON.as_bytes().to_vec();
    file.extend_from_slice(b"{\"member_number\": \"S\xE9gou\"}\n");
    let mut reader = NdjsonHouseholds::new(file.as_slice(), Some("prod-segou".into()));
    let items: Vec<_> = reader.by_ref().collect();
    assert_eq!(reader.rows_read(), 6, "the blank line is not a row");
    assert_eq!(items.len(), 6);

    let good = items[0].clone().unwrap();
    assert_eq!((good.household.as_str(), good.first_row, good.rows), ("SGU-1", 1, 1));
    assert_eq!(good.draft.product.as_deref(), Some("prod-segou"));
    let r = good.validate(&product(None, None), today()).unwrap();
    assert_eq!(r.principal.family_name, "Traoré");
    assert_eq!(
        r.dependants[0].beneficiary.birth_date_precision,
        BirthDatePrecision::Year
    );

    let bad = failure(&items[1]);
    assert_eq!(codes(&bad.errors), [(3, "", "malformed_json")]);
    assert_eq!(bad.household, "");

    let typed = failure(&items[2]).clone();
    assert_eq!(typed.household, "SGU-3");
    assert_eq!(
        typed.unchecked.as_ref().unwrap().draft.product.as_deref(),
        Some("prod-other")
    );
    assert_eq!(
        codes(&typed.errors),
        [
            (4, "/start_date", "invalid_type"),
            (4, "/principal/nickname", "unknown_field")
        ]
    );
    let typed = typed.complete(&NationalIdRules::SHIPPED, None, today());
    assert_eq!(
        codes(&typed.errors),
        [
            (4, "/start_date", "invalid_type"),
            (4, "/principal/nickname", "unknown_field")
        ],
        "the missing start date is the mistyped one, not a second error"
    );

    assert_eq!(codes(&failure(&items[3]).errors), [(5, "", "invalid_type")]);

    let adult_child = items[4].clone().unwrap();
    assert_eq!(adult_child.first_row, 6);
    let f = adult_child.validate(&product(None, Some(21)), today()).unwrap_err();
    assert_eq!(
        codes(&f.errors),
        [(6, "/dependants/0/birth_date", "dependant_age_limit")]
    );
    assert_eq!(f.household, "SGU-5");

    assert_eq!(codes(&failure(&items[5]).errors), [(7, "", "invalid_encoding")]);
}

#[test]
fn ndjson_lines_too_long_are_skipped_whole() {
    let mut file = format!("{{\"member_number\": \"{}\"}}\n", "9".repeat(MAX_NDJSON_LINE_BYTES));
    file.push_str("{\"member_number\": \"SGU-1\"}");
    let items: Vec<_> = NdjsonHouseholds::new(io::BufReader::with_capacity(1024, file.as_bytes()), None).collect();
    assert_eq!(items.len(), 2);
    assert_eq!(codes(&failure(&items[0]).errors), [(1, "", "line_too_long")]);
    let second = items[1].clone().unwrap();
    assert_eq!((second.household.as_str(), second.first_row), ("SGU-1", 2));
    let f = second.validate(&product(None, None), today()).unwrap_err();
    assert_eq!(
        codes(&f.errors),
        [(2, "/start_date", "required"), (2, "/principal", "required")]
    );
}

/// A cell typed over several lines (Alt+Enter) is one row, as a spreadsheet shows it: the cell
/// fails its household, and every later row keeps the number the clerk sees.
#[test]
fn a_line_break_inside_a_quoted_cell_fails_its_row_and_keeps_row_numbers() {
    let body = "H1,principal,TSV-1,Mensah,\"Kofi\r\nAfi\",M,1980,,,Maritime,\"Zio\n\nnord\",Tsévié,2026-01-01,\r\n\
H1,child,,Mensah,Yao,M,2015,,,,,,,\r\n\
H2,principal,TSV-2,Ba,Awa,F,1980,,,,,,2026-01-01,\r\n";
    let mut reader = CsvHouseholds::new(io::Cursor::new(format!("{HEADER}{body}"))).unwrap();
    let items: Vec<_> = reader.by_ref().collect();
    assert_eq!(reader.rows_read(), 3);
    assert_eq!(items.len(), 2);
    let h1 = failure(&items[0]);
    assert_eq!((h1.household.as_str(), h1.first_row, h1.rows), ("H1", 2, 2));
    assert_eq!(
        codes(&h1.errors),
        [
            (2, "given_names", "line_break_in_cell"),
            (2, "district", "line_break_in_cell")
        ]
    );
    assert!(h1.errors[0].message_fr.contains("Alt+Entrée"));
    let h2 = items[1].clone().unwrap();
    assert_eq!((h2.first_row, h2.member_rows.clone()), (4, vec![4]));

    // More line breaks than a cell may hold: a forgotten quote, the line stands alone.
    let many = "\n".repeat(MAX_CELL_LINE_BREAKS + 1);
    let body = format!("H1,principal,TSV-1,Mensah,\"Kofi{many}\",M,1980,,,,,,2026-01-01,\n");
    let items = csv(format!("{HEADER}{body}").as_bytes());
    assert_eq!(
        codes(&failure(&items[0]).errors),
        [(2, "given_names", "unclosed_quote")]
    );
    let within = "\n".repeat(MAX_CELL_LINE_BREAKS);
    let body = format!("H1,principal,TSV-1,Mensah,\"Kofi{within}\",M,1980,,,,,,2026-01-01,\nH2,principal,TSV-2,Ba,Awa,F,1980,,,,,,2026-01-01,\n");
    let items = csv(format!("{HEADER}{body}").as_bytes());
    assert_eq!(
        codes(&failure(&items[0]).errors),
        [(2, "given_names", "line_break_in_cell")]
    );
    assert_eq!(items[1].as_ref().unwrap().first_row, 3);

    // A quote forgotten in the last column, closed by the opening quote of the next row's own
    // multi-line cell: the next row is not swallowed (its row keeps its own number and errors).
    let body = "Y1,principal,Y1-1,Mensah,Kofi,M,1980,,,,,,2026-01-01,\"2026-12-31\r\n\
Y2,principal,Y2-1,Ba,\"Awa\nMarie\",F,1980,,,,,,2026-01-01,\r\n\
Y3,principal,Y3-1,Sow,Ali,M,1980,,,,,,2026-01-01,\r\n";
    let items = csv(format!("{HEADER}{body}").as_bytes());
    assert_eq!(
        codes(&failure(&items[0]).errors),
        [(2, "paid_through", "unclosed_quote")]
    );
    assert_eq!(
        codes(&failure(&items[1]).errors),
        [(3, "given_names", "line_break_in_cell")]
    );
    assert_eq!(failure(&items[1]).household, "Y2");
    assert_eq!(items[2].as_ref().unwrap().first_row, 4);
    // A forgotten quote on a row a field short, or before one: nothing swallowed either.
    for body in [
        "Q1,principal,Q1-1,\"Ba,Awa,F,1980,,,,,,2026-01-01\nQ2,principal,Q2-1,\"Sow\",Ali,M,1980,,,,,,2026-01-01,\n",
        "Q1,principal,Q1-1,Mensah,\"Kofi,M,1980,,,,,,2026-01-01,\nQ2,principal,Q2-1,\"Ba\",Awa,F,1980,,,,,,2026-01-01\n",
    ] {
        let items = csv(format!("{HEADER}{body}").as_bytes());
        assert_eq!(items.len(), 2, "{body}");
        assert_eq!(failure(&items[0]).errors[0].code, "unclosed_quote", "{body}");
        let (household, first_row) = match &items[1] {
            Ok(rows) => (rows.household.clone(), rows.first_row),
            Err(failed) => (failed.household.clone(), failed.first_row),
        };
        assert_eq!((household.as_str(), first_row), ("Q2", 3), "{body}");
    }
    // Cells as a spreadsheet writes them, whatever they hold: separators on a later line, a
    // last line break (LibreOffice quoting every text cell), a column before the household's.
    let body = "H1,principal,TSV-1,Mensah,Kofi,M,1980,,,Maritime,Zio,\"Bè, rue 12\nBP 3, Lomé\",2026-01-01,\nH2,principal,TSV-2,Ba,Awa,F,1980,,,,,,2026-01-01,\n";
    let items = csv(format!("{HEADER}{body}").as_bytes());
    assert_eq!(
        codes(&failure(&items[0]).errors),
        [(2, "commune", "line_break_in_cell")]
    );
    assert_eq!(items[1].as_ref().unwrap().first_row, 3);
    let quoted: Vec<String> = CSV_COLUMNS.iter().map(|c| format!("\"{c}\"")).collect();
    let body = "\"L1\",\"principal\",\"L1\",\"Mensah\",\"Kofi\",\"M\",\"1980\",,,\"Maritime\",\"Zio\",\"Zio 1\na, b\n\",2026-01-01,\r\n\
\"L2\",\"principal\",\"L2\",\"Ba\",\"Awa\",\"F\",\"1980\",,,,,,2026-01-01,\r\n\
\"L3\",\"principal\",\"L3\",\"Sow\",\"Ali\",\"M\",\"1980\",,,,,,2026-01-01,\r\n";
    let items = csv(format!("{}\r\n{body}", quoted.join(",")).as_bytes());
    assert_eq!(
        codes(&failure(&items[0]).errors),
        [(2, "commune", "line_break_in_cell")]
    );
    assert_eq!(items[1].as_ref().unwrap().first_row, 3);
    assert_eq!(items[2].as_ref().unwrap().first_row, 4);
    let header = "district,household,relationship,member_number,family_name,given_names,sex,birth_date,national_id,phone,region,commune,start_date,paid_through\r\n";
    let body = ",K1,principal,K1,Mensah,Kofi,M,1980,,,,,2026-01-01,\r\n\"Zio\r\nnord, sud\",K2,principal,K2,Ba,Awa,F,1980,,,Maritime,Zio 1,2026-01-01,\r\n,K3,principal,K3,Sow,Ali,M,1980,,,,,2026-01-01,\r\n";
    let items = csv(format!("{header}{body}").as_bytes());
    assert_eq!(items[0].as_ref().unwrap().household, "K1");
    assert_eq!(failure(&items[1]).household, "K2");
    assert_eq!(
        codes(&failure(&items[1]).errors),
        [(3, "district", "line_break_in_cell")]
    );
    assert_eq!(items[2].as_ref().unwrap().first_row, 4);
    // The quote that opens a later quoted cell, text after it, is no cell's end: a cell whose
    // join it would close is a forgotten quote, and the row after it stays a row.
    let body = "M1,principal,M1,Mensah,Kofi,M,1980,,,Maritime,\"Zio\nl,\",Zio 1,2026-01-01,\n\"M2\",principal,M2,Ba,Awa,F,1980,,,,,,2026-01-01,\n";
    let items = csv(format!("{HEADER}{body}").as_bytes());
    assert_eq!(
        codes(&failure(&items[0]).errors),
        [(2, "district", "line_break_in_cell")]
    );
    assert_eq!(items[1].as_ref().unwrap().household, "M2");

    // A cell refused (a whole row's separators in it): the household before it fails with it,
    // and its last line, ending in a stray quote, is never registered as a row.
    let body = "Zio,ZA,principal,ZA,Mensah,Kofi,M,1980,,,Maritime,Zio 1,2026-01-01,\n\
\"Zio,x,x,x,x,x,x,x,x,x,x,x,x,x\nnord\",ZB,principal,ZB,Ba,Awa,F,1980,,,Maritime,Zio 1,2026-01-01,\n\
Zio,ZC,principal,ZC,Sow,Ali,M,1980,,,Maritime,Zio 1,2026-01-01,\n";
    let items = csv(format!("{header}{body}").as_bytes());
    assert_eq!(codes(&failure(&items[0]).errors), [(3, "district", "unclosed_quote")]);
    assert_eq!(failure(&items[1]).household, "ZB");
    assert_eq!(codes(&failure(&items[1]).errors), [(4, "district", "stray_quote")]);
    assert!(!failure(&items[1]).errors[0].message_en.contains("nord"));
    assert_eq!(items[2].as_ref().unwrap().household, "ZC");
    // A cell on a row a field short is still one row, which fails as such.
    let body = "H1,principal,TSV-1,Mensah,\"Kofi\nAfi\nYao\",M,1980,,,,,2026-01-01,\nH2,principal,TSV-2,Ba,Awa,F,1980,,,,,,2026-01-01,\n";
    let items = csv(format!("{HEADER}{body}").as_bytes());
    assert_eq!(codes(&failure(&items[0]).errors), [(2, "", "wrong_field_count")]);
    assert_eq!(items[1].as_ref().unwrap().first_row, 3);

    // The first read numbers rows alike: a split household names the row a spreadsheet shows.
    let body = "H1,principal,TSV-1,Mensah,\"Kofi\nAfi\",M,1980,,,,,,2026-01-01,\nH2,principal,TSV-2,Ba,Awa,F,1980,,,,,,2026-01-01,\nH1,child,,Mensah,Yao,M,2015,,,,,,,\n";
    let items = csv(format!("{HEADER}{body}").as_bytes());
    assert!(failure(&items[0]).errors[0]
        .message_en
        .contains("appears again at row 4"));
    assert_eq!(failure(&items[2]).first_row, 4);
}

/// A spreadsheet exports the empty columns its sheet once used beyond the table: columns without
/// a name are read past while their cells are empty.
#[test]
fn unnamed_columns_must_stay_empty() {
    let header = HEADER.replace('\n', ",,\n");
    assert_eq!(check_csv_header(header.as_bytes()), Ok(b','));
    let body = "H1,principal,TSV-1,Mensah,Kofi,M,1980,,,,,,2026-01-01,,,\n\
H2,principal,TSV-2,Ba,Awa,F,1980,,,,,,2026-01-01,,,oups\n";
    let items = csv(format!("{header}{body}").as_bytes());
    assert_eq!(items[0].as_ref().unwrap().draft.member_number.as_deref(), Some("TSV-1"));
    let h2 = failure(&items[1]);
    assert_eq!(codes(&h2.errors), [(3, "", "unnamed_column")]);
    assert!(
        h2.errors[0].message_en.contains("column P "),
        "{}",
        h2.errors[0].message_en
    );
    assert!(!h2.errors[0].message_en.contains("oups"));
    // Still the header's width: a row without the empty cells is short.
    let short = format!("{header}H1,principal,TSV-1,Mensah,Kofi,M,1980,,,,,,2026-01-01,\n");
    assert_eq!(
        codes(&failure(&csv(short.as_bytes())[0]).errors),
        [(2, "", "wrong_field_count")]
    );
    assert_eq!(
        check_csv_header(HEADER.replace(',', ";").replace('\n', ";;\n").as_bytes()),
        Ok(b';')
    );
    let letters: Vec<String> = [0, 25, 26, 27, 51, 52, 701, 702]
        .map(super::csv_reader::column_letter)
        .into();
    assert_eq!(letters, ["A", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA"]);
}

/// A header of many empty names and rows that fill them: one error a row, naming the first
/// five columns and how many more, however many there are.
#[test]
fn a_row_filling_many_unnamed_columns_is_one_error() {
    let header = HEADER.replace('\n', &format!("{}\n", ",".repeat(50_000)));
    let filled = ",x".repeat(50_000);
    let body = format!("H2,principal,TSV-2,Ba,Awa,F,1980,,,,,,2026-01-01,{filled}\n");
    let items = csv(format!("{header}{body}").as_bytes());
    let h2 = failure(&items[0]);
    assert_eq!(codes(&h2.errors), [(2, "", "unnamed_column")]);
    assert!(
        h2.errors[0]
            .message_en
            .starts_with("columns O, P, Q, R, S and 49995 more hold values"),
        "{}",
        h2.errors[0].message_en
    );
    assert!(h2.errors[0].message_fr.contains("O, P, Q, R, S et 49995 autres"));
}

/// A JSON line of sixty thousand made-up members, or of a hundred dependants each wrong thrice,
/// reports a bounded number of errors, the last saying how many more.
#[test]
fn a_line_of_many_faults_reports_the_first_and_a_count() {
    use crate::error::MAX_UNKNOWN_FIELDS_NAMED;
    let keys: Vec<String> = (0..60_000).map(|i| format!("\"k{i:06}\": 0")).collect();
    let line = format!("{{\"member_number\": \"SGU-1\", {}}}\n", keys.join(", "));
    let items: Vec<_> = NdjsonHouseholds::new(line.as_bytes(), Some("prod-segou".into())).collect();
    let errors = &failure(&items[0]).errors;
    let unknown: Vec<&RowError> = errors.iter().filter(|e| e.code == "unknown_field").collect();
    assert_eq!(unknown.len(), MAX_UNKNOWN_FIELDS_NAMED);
    assert_eq!(unknown[0].field, "/k000000");
    let more: Vec<&RowError> = errors.iter().filter(|e| e.code == "too_many_errors").collect();
    assert_eq!(more.len(), 1, "{errors:?}");
    assert!(
        more[0].message_en.starts_with("59980 more faults"),
        "{}",
        more[0].message_en
    );
    let dependants: Vec<String> = (0..100)
        .map(|i| format!("{{\"relationship\": \"child\", \"x{i}\": 1, \"y\": 2, \"z\": 3}}"))
        .collect();
    let line = format!(
        "{{\"member_number\": \"SGU-2\", \"dependants\": [{}]}}\n",
        dependants.join(", ")
    );
    let items: Vec<_> = NdjsonHouseholds::new(line.as_bytes(), Some("prod-segou".into())).collect();
    let errors = &failure(&items[0]).errors;
    assert_eq!(
        errors.len(),
        MAX_ERRORS_PER_HOUSEHOLD + 1,
        "{:?}",
        &errors[..errors.len().min(3)]
    );
    assert_eq!(errors.last().unwrap().code, "too_many_errors");
}

/// AutoCorrect capitalises a cell's first letter: codes are read whatever their case.
#[test]
fn relationship_and_sex_are_read_whatever_their_case() {
    let body = "H1,Principal,TSV-1,Mensah,Kofi,m,1980,,,,,,2026-01-01,\nH1,CHILD,,Mensah,Yawa,f,2015,,,,,,,\nH1,Cousin,,Mensah,Ama,F,2014,,,,,,,\n";
    let rows = csv(format!("{HEADER}{body}").as_bytes()).remove(0).unwrap();
    assert_eq!(rows.draft.principal.sex.as_deref(), Some("M"));
    assert_eq!(rows.draft.dependants[0].relationship.as_deref(), Some("child"));
    assert_eq!(rows.draft.dependants[0].beneficiary.sex.as_deref(), Some("F"));
    assert_eq!(rows.draft.dependants[1].relationship.as_deref(), Some("Cousin"));
    let f = rows.validate(&product(None, None), today()).unwrap_err();
    assert_eq!(codes(&f.errors), [(4, "relationship", "unknown_value")]);
}

/// A national id column typed as numbers: the message says what the spreadsheet did, never the
/// value.
#[test]
fn a_national_id_without_its_country_and_type_says_so() {
    let body = "H1,principal,TSV-1,Mensah,Kofi,M,1980,987654321098,,,,,2026-01-01,\n\
H2,principal,TSV-2,Ba,Awa,F,1980,\"9,87654E+11\",,,,,2026-01-01,\n\
H3,principal,TSV-3,Sow,Ali,M,1980,TG-987,,,,,2026-01-01,\n";
    let items = csv(format!("{HEADER}{body}").as_bytes());
    let message = |i: usize| {
        let e = &failure(&items[i]).errors[0];
        assert_eq!(
            (e.field.as_str(), e.code.as_str()),
            ("national_id", "invalid_national_id")
        );
        e.message_en.clone()
    };
    assert!(message(0).contains("holds the number alone"), "{}", message(0));
    assert!(message(0).contains("SN:CNI"));
    assert!(message(1).contains("scientific notation"), "{}", message(1));
    assert!(message(2).contains("must be COUNTRY:TYPE:VALUE"), "{}", message(2));
    for i in 0..3 {
        assert!(!message(i).contains("987"), "{}", message(i));
    }
}

/// A line naming one member twice in an object is refused as a `/v1` body is, never stored as
/// its last value (a person's name was).
#[test]
fn an_ndjson_line_naming_a_member_twice_is_refused() {
    let file = br#"{"member_number": "SGU-9", "start_date": "2026-01-01", "principal": {"family_name": "Keita", "family_name": "Traore", "given_names": "Sira", "sex": "F", "birth_date": "1988-03-03"}}
"#;
    let mut reader = NdjsonHouseholds::new(file.as_slice(), Some("prod-segou".into()));
    let items: Vec<_> = reader.by_ref().collect();
    assert_eq!(items.len(), 1);
    let refused = failure(&items[0]);
    assert_eq!(codes(&refused.errors), [(1, "", "malformed_json")]);
    assert!(refused.errors[0].message_en.contains("twice"), "{:?}", refused.errors);
}

/// Gives one byte a read, each after a read interrupted (`ErrorKind::Interrupted`, a signal):
/// such a read is tried again, as `std::io` readers are meant to be.
struct Interrupting {
    inner: io::Cursor<Vec<u8>>,
    interrupt: bool,
}

impl Read for Interrupting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.interrupt = !self.interrupt;
        if self.interrupt {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        let n = buf.len().min(1);
        self.inner.read(&mut buf[..n])
    }
}

impl Seek for Interrupting {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.inner.seek(to)
    }
}

#[test]
fn interrupted_reads_are_tried_again() {
    let mut reader = CsvHouseholds::new(Interrupting {
        inner: io::Cursor::new(GOOD.as_bytes().to_vec()),
        interrupt: false,
    })
    .unwrap();
    let read: Vec<(String, Vec<u64>)> = reader
        .by_ref()
        .map(|h| {
            let h = h.unwrap();
            (h.household.clone(), h.member_rows.clone())
        })
        .collect();
    assert!(reader.take_error().is_none());
    assert_eq!(
        read,
        [
            ("H1".to_owned(), vec![2, 3, 4]),
            ("H2".to_owned(), vec![5, 6]),
            ("H3".to_owned(), vec![7]),
        ]
    );
}

/// Gives the bytes it holds, then fails for good (a disk or a connection lost), and panics
/// past a thousand tries rather than let a reader that retries for ever hang the test.
struct FailingAfter {
    inner: io::Cursor<Vec<u8>>,
    failures: u32,
}

impl Read for FailingAfter {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        self.failures += 1;
        assert!(self.failures < 1000, "a failed read was tried again and again");
        Err(io::Error::other("the file's disk is gone"))
    }
}

impl Seek for FailingAfter {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.inner.seek(to)
    }
}

/// A read that fails just after a line's `\r`, while looking for the `\n` of a `\r\n`, stops
/// the reading with that error: only an interrupted read is tried again.
#[test]
fn a_read_failing_after_a_carriage_return_stops_the_file() {
    // The file up to the `\r` ending its third line (the spouse of H1), its `\n` never read.
    let third_cr = GOOD.match_indices("\r\n").nth(2).unwrap().0;
    let mut reader = CsvHouseholds::new(FailingAfter {
        inner: io::Cursor::new(GOOD.as_bytes()[..=third_cr].to_vec()),
        failures: 0,
    })
    .unwrap();
    let households: Vec<String> = reader
        .by_ref()
        .filter_map(|h| h.ok().map(|h| h.household.clone()))
        .collect();
    let error = reader.take_error().expect("the failure is kept for the job");
    assert_eq!(error.kind(), io::ErrorKind::Other);
    assert_eq!(error.to_string(), "the file's disk is gone");
    // H1 was not read whole, and nothing after it was read at all.
    assert!(households.is_empty(), "{households:?}");
}

/// A line of exactly `MAX_CSV_RECORD_BYTES` bytes is read (it reaches the reader in many reads);
/// one byte more stops the file.
#[test]
fn a_line_of_the_limit_is_read_and_one_byte_more_is_not() {
    let limit = usize::try_from(MAX_CSV_RECORD_BYTES).unwrap();
    let at_limit = format!("{GOOD}{}\n", "x".repeat(limit));
    let mut reader = CsvHouseholds::new(io::Cursor::new(at_limit)).unwrap();
    let items: Vec<_> = reader.by_ref().collect();
    assert!(reader.take_error().is_none(), "no read error stops the file");
    // The long line is a row of one cell, read with H3 and refused with it: a row's fault,
    // not the file's.
    let households: Vec<&str> = items
        .iter()
        .filter_map(|h| h.as_ref().ok())
        .map(|h| h.household.as_str())
        .collect();
    assert_eq!((items.len(), households), (3, vec!["H1", "H2"]));

    let past_limit = format!("{GOOD}{}\n", "x".repeat(limit + 1));
    let mut reader = CsvHouseholds::new(io::Cursor::new(past_limit)).unwrap();
    let _: Vec<_> = reader.by_ref().collect();
    let e = reader.take_error().expect("the line is refused");
    let too_long = e.get_ref().and_then(|inner| inner.downcast_ref::<LineTooLong>());
    assert_eq!(too_long, Some(&LineTooLong { line: 8 }));
}

/// README: `region`, `district` and `commune` are all three or none. A row giving only its
/// district, or only its commune, is refused for the parts it lacks, not read as a row without
/// a locality (which would drop the place the clerk typed).
#[test]
fn a_locality_given_in_part_is_refused_whichever_part_is_given() {
    let body = "\
H1,principal,TSV-1,Mensah,Kofi,M,1980,,,,Zio,,2026-01-01,
H2,principal,TSV-2,Ba,Awa,F,1980,,,,,Tsévié,2026-01-01,
";
    let items = csv(format!("{HEADER}{body}").as_bytes());
    let errors = |item: &HouseholdItem| {
        let rows = item.clone().unwrap();
        codes(&rows.validate(&product(None, None), today()).unwrap_err().errors)
            .into_iter()
            .map(|(row, field, code)| (row, field.to_owned(), code.to_owned()))
            .collect::<Vec<_>>()
    };
    let expect = |row: u64, fields: [&str; 2]| {
        fields
            .map(|field| (row, field.to_owned(), "incomplete_locality".to_owned()))
            .to_vec()
    };
    assert_eq!(errors(&items[0]), expect(2, ["region", "commune"]));
    assert_eq!(errors(&items[1]), expect(3, ["region", "district"]));
}

/// A cell typed over several lines is read as one row only while the joined row stays within
/// `MAX_CSV_RECORD_BYTES`, the longest a person's row may be: a row of exactly that many bytes
/// is one row (its cell fails as `line_break_in_cell`, the next row keeps the number the
/// spreadsheet shows), one byte more is a forgotten quote (`unclosed_quote`, and the next line
/// is read as a row of its own).
#[test]
fn a_cell_over_several_lines_joins_its_row_up_to_the_row_limit_only() {
    let limit = usize::try_from(MAX_CSV_RECORD_BYTES).unwrap();
    let opening = "H1,principal,TSV-1,\"";
    let closing = "x\",Kofi,M,1980,,,,,,2026-01-01,";
    let after = "H2,principal,TSV-2,Ba,Awa,F,1980,,,,,,2026-01-01,\n";
    let file = |row_bytes: usize| {
        // The row's two lines joined by their line break.
        let name = "A".repeat(row_bytes - opening.len() - 1 - closing.len());
        let file = format!("{HEADER}{opening}{name}\n{closing}\n{after}");
        assert_eq!(file.len(), HEADER.len() + row_bytes + 1 + after.len());
        file
    };
    let first_row = |item: &HouseholdItem| match item {
        Ok(rows) => rows.first_row,
        Err(failed) => failed.first_row,
    };

    let items = csv(file(limit).as_bytes());
    assert_eq!(items.len(), 2);
    assert_eq!(
        codes(&failure(&items[0]).errors),
        [(2, "family_name", "line_break_in_cell")]
    );
    assert_eq!(
        (items[1].as_ref().unwrap().household.as_str(), first_row(&items[1])),
        ("H2", 3)
    );

    let items = csv(file(limit + 1).as_bytes());
    assert_eq!(
        codes(&failure(&items[0]).errors),
        [(2, "family_name", "unclosed_quote")]
    );
    let h2 = items.last().unwrap().as_ref().unwrap();
    assert_eq!((h2.household.as_str(), h2.first_row), ("H2", 4));
}

/// A JSON lines file whose read fails midway ends the iteration with that error kept for the
/// job (`take_error`, once): the lines read whole are returned, not the one being read.
#[test]
fn an_ndjson_read_failure_is_kept_for_the_job() {
    let cut = NDJSON.find('\n').unwrap() + 1 + 30;
    let broken = Broken {
        data: NDJSON.as_bytes(),
        at: 0,
        limit: cut,
    };
    let mut reader = NdjsonHouseholds::new(io::BufReader::new(broken), None);
    let items: Vec<_> = reader.by_ref().collect();
    assert_eq!(items.len(), 1, "the first line only");
    assert_eq!(items[0].as_ref().unwrap().household, "SGU-1");
    assert_eq!(
        reader.take_error().map(|e| e.kind()),
        Some(io::ErrorKind::ConnectionReset)
    );
    assert!(reader.take_error().is_none(), "taken once");
}

/// A JSON lines file read through a reader interrupted before every byte
/// (`ErrorKind::Interrupted`, which asks for the read to be tried again) reads the same
/// households as read whole, and ends with no error.
#[test]
fn ndjson_reads_interrupted_are_tried_again() {
    let summary = |items: Vec<HouseholdItem>| -> Vec<(u64, bool)> {
        items
            .iter()
            .map(|h| match h {
                Ok(rows) => (rows.first_row, true),
                Err(failed) => (failed.first_row, false),
            })
            .collect()
    };
    let whole = summary(NdjsonHouseholds::new(NDJSON.as_bytes(), None).collect());
    let mut reader = NdjsonHouseholds::new(
        io::BufReader::new(Interrupting {
            inner: io::Cursor::new(NDJSON.as_bytes().to_vec()),
            interrupt: false,
        }),
        None,
    );
    let items: Vec<_> = reader.by_ref().collect();
    assert!(reader.take_error().is_none());
    assert_eq!(summary(items), whole);
    assert_eq!(whole[0], (1, true), "the first line is a household");
}

/// `MAX_NDJSON_LINE_BYTES`: a JSON line of exactly that many bytes (its line end aside) is
/// read; one byte more fails that line alone as `line_too_long`, counted as a row read, whether
/// the line arrives in one read or in many.
#[test]
fn an_ndjson_line_of_the_limit_is_read_and_one_byte_more_is_not() {
    // JSON allows white space after the value: the lines are padded to their length.
    let line = |member_number: &str, bytes: usize| {
        let body = format!("{{\"member_number\": \"{member_number}\"}}");
        format!("{body}{}\n", " ".repeat(bytes - body.len()))
    };
    let file = [
        line("SGU-1", MAX_NDJSON_LINE_BYTES + 1),
        line("SGU-2", MAX_NDJSON_LINE_BYTES),
    ]
    .concat();
    for capacity in [1024, 4 << 20] {
        let mut reader = NdjsonHouseholds::new(io::BufReader::with_capacity(capacity, file.as_bytes()), None);
        let items: Vec<_> = reader.by_ref().collect();
        assert_eq!(items.len(), 2, "{capacity}");
        assert_eq!(
            codes(&failure(&items[0]).errors),
            [(1, "", "line_too_long")],
            "{capacity}"
        );
        let read = items[1].as_ref().unwrap();
        assert_eq!((read.household.as_str(), read.first_row), ("SGU-2", 2), "{capacity}");
        assert_eq!(reader.rows_read(), 2, "{capacity}");
    }
}

/// A byte order mark opens a file, it is no content: a first line holding only it is a blank
/// line, skipped (bulk-registration.md: blank lines are ignored), and the next line is row 2.
#[test]
fn an_ndjson_first_line_of_only_a_byte_order_mark_is_blank() {
    let file = "\u{FEFF}\n{\"member_number\": \"SGU-1\"}\n";
    let mut reader = NdjsonHouseholds::new(file.as_bytes(), None);
    let items: Vec<_> = reader.by_ref().collect();
    assert_eq!(items.len(), 1);
    let read = items[0].as_ref().unwrap();
    assert_eq!((read.household.as_str(), read.first_row), ("SGU-1", 2));
    assert_eq!(reader.rows_read(), 1);
}

/// A line that is not JSON is told so, and not as a member named twice, which is told apart.
#[test]
fn an_ndjson_line_not_json_is_not_named_a_repeated_member() {
    let items: Vec<_> = NdjsonHouseholds::new(&b"{\"member_number\": \"SGU-1\",}\n"[..], None).collect();
    let refused = failure(&items[0]);
    assert_eq!(codes(&refused.errors), [(1, "", "malformed_json")]);
    let en = &refused.errors[0].message_en;
    assert!(en.contains("not valid JSON") && !en.contains("twice"), "{en}");
}
