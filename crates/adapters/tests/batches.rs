//! Bulk registration jobs in storage, on SQLite and PostgreSQL: one claim per job among
//! competing workers, progress only from the holder, stale jobs failed once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step must stop the test loudly

use std::sync::Arc;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use passerelle_adapters::testing::TestDatabase;
use passerelle_adapters::{connect, Backend, Database, DatabaseOptions};
use passerelle_domain::batch::{RowDuplicate, RowError};
use passerelle_domain::beneficiary::{Sex, ValidBeneficiary};
use passerelle_domain::coverage::Relationship;
use passerelle_domain::eligibility::BirthDatePrecision;
use passerelle_domain::error::StoreError;
use passerelle_domain::organization::{Country, OrgId, OrgKind, Organization};
use passerelle_domain::ports::{
    BatchCounts, BatchEnd, BatchFailure, BatchFormat, BatchStatus, BatchUpdate, HouseholdOutcome, IdempotencyKey,
    NewBatch, NewHousehold, NewMember, Registered, Store, WriteContext, MAX_STORED_BATCH_ERRORS,
};
use passerelle_domain::product::{Layer, ProductVersion};

async fn store(backend: Backend) -> (TestDatabase, Database, Arc<dyn Store>) {
    let db = TestDatabase::new(backend).await;
    let database = connect(&DatabaseOptions::new(&db.url)).await.expect("connect");
    database.migrate().await.expect("migrate");
    let store = database.store.clone();
    let at = Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap();
    let org = Organization {
        id: OrgId::parse("mut-a").unwrap(),
        kind: OrgKind::Mutuelle,
        country: Country::parse("TG").unwrap(),
        name: "Mutuelle A".into(),
        registration_number: None,
        created_at: at,
        deactivated_at: None,
    };
    store.create_organization(&ctx(None), &org).await.unwrap();
    (db, database, store)
}

fn ctx(idempotency: Option<IdempotencyKey>) -> WriteContext {
    WriteContext {
        organization: "mut-a".into(),
        subject: "tester".into(),
        request_id: "r1".into(),
        trace_parent: None,
        at: Utc::now(),
        idempotency,
    }
}

fn batch(id: &str) -> NewBatch {
    NewBatch {
        id: id.into(),
        product: Some("p1".into()),
        format: BatchFormat::Csv,
        spool_path: format!("/tmp/{id}.upload"),
        csv_separator: Some(';'),
        worker: None,
    }
}

fn error(row: u64) -> RowError {
    RowError {
        row,
        household: format!("H{row}"),
        field: "sex".into(),
        code: "unknown_value".into(),
        message_en: "must be F or M".into(),
        message_fr: "doit valoir F ou M".into(),
    }
}

fn duplicate(row: u64, matches: &[&str]) -> RowDuplicate {
    RowDuplicate {
        row,
        household: format!("H{row}"),
        field: "family_name".into(),
        beneficiary: format!("new-{row}"),
        matches: matches.iter().map(|m| (*m).to_owned()).collect(),
    }
}

async fn one_worker_claims_a_job_and_only_it_reports(backend: Backend) {
    let (_db, _database, store) = store(backend).await;
    let key = IdempotencyKey {
        key: "k1".into(),
        fingerprint: "f1".into(),
        canonical: None,
        legacy_canonical: None,
    };
    let created = store.create_batch(&ctx(Some(key.clone())), &batch("b1")).await.unwrap();
    assert!(!created.replayed);
    assert_eq!(created.value.status, BatchStatus::Queued);
    let replay = store.create_batch(&ctx(Some(key)), &batch("b2")).await.unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.value, created.value, "the job as first created");
    // A replica sees the queued jobs of the uploads it holds, and only those.
    let here = vec!["/tmp/b1.upload".to_owned(), "/tmp/elsewhere.upload".to_owned()];
    let seen = store.queued_batches(&here, Utc::now()).await.unwrap();
    assert_eq!(seen.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["b1"]);
    assert!(store
        .queued_batches(&["/tmp/other.upload".to_owned()], Utc::now())
        .await
        .unwrap()
        .is_empty());
    assert!(store.queued_batches(&[], Utc::now()).await.unwrap().is_empty());
    // A queued job's upload is live; one no job names is a leftover.
    assert_eq!(store.live_uploads(&here).await.unwrap(), ["/tmp/b1.upload"]);

    // Several workers race for it: exactly one wins.
    let at = Utc::now();
    let claims = futures::future::join_all((0..6).map(|i| {
        let store = store.clone();
        async move { store.claim_batch("b1", &format!("w{i}"), at).await.unwrap() }
    }))
    .await;
    assert_eq!(claims.iter().filter(|c| **c).count(), 1);
    let winner = format!("w{}", claims.iter().position(|c| *c).unwrap());
    let loser = if winner == "w0" { "w1" } else { "w0" };
    assert!(store.queued_batches(&here, Utc::now()).await.unwrap().is_empty());
    assert_eq!(
        store.live_uploads(&here).await.unwrap(),
        ["/tmp/b1.upload"],
        "running, still live"
    );

    let mut update = BatchUpdate {
        counts: BatchCounts {
            rows_processed: 3,
            households_created: 1,
            households_skipped: 0,
            rows_failed: 2,
            errors_total: 2,
            possible_duplicates_total: 2,
        },
        new_errors: vec![error(3), error(2)],
        new_duplicates: vec![duplicate(5, &["p1", "p2"]), duplicate(4, &["p3"])],
        events: Vec::new(),
        finish: None,
        at,
    };
    assert!(!store.update_batch("b1", loser, &update).await.unwrap());
    assert!(store.update_batch("b1", &winner, &update).await.unwrap());
    let job = store.get_batch("b1").await.unwrap().unwrap();
    assert_eq!((job.status, job.counts), (BatchStatus::Running, update.counts));
    assert_eq!(job.csv_separator, Some(';'), "the file's separator, for its report");
    let rows: Vec<u64> = store
        .batch_errors("b1", None, 10)
        .await
        .unwrap()
        .iter()
        .map(|(_, e)| e.row)
        .collect();
    assert_eq!(rows, [2, 3], "by row");
    let found: Vec<RowDuplicate> = store
        .batch_duplicates("b1", None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    assert_eq!(
        found,
        [duplicate(4, &["p3"]), duplicate(5, &["p1", "p2"])],
        "by row, whole"
    );
    update.new_duplicates.clear();

    // Several errors of one row, found apart: by row, then in the order found, a page at a time
    // from any key a page ends on.
    let mut late = error(2);
    late.field = "birth_date".into();
    update.new_errors = vec![error(7), late, error(1)];
    update.counts.errors_total += 3;
    assert!(store.update_batch("b1", &winner, &update).await.unwrap());
    let all = store.batch_errors("b1", None, 10).await.unwrap();
    let order: Vec<(u64, &str)> = all.iter().map(|(_, e)| (e.row, e.field.as_str())).collect();
    assert_eq!(
        order,
        [(1, "sex"), (2, "sex"), (2, "birth_date"), (3, "sex"), (7, "sex")]
    );
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "keys follow the order");
    for (i, (key, _)) in all.iter().enumerate() {
        let rest = store.batch_errors("b1", Some(*key), 2).await.unwrap();
        let expected: Vec<_> = all[i + 1..].iter().take(2).cloned().collect();
        assert_eq!(rest, expected, "after {key:?}");
    }
    let none_yet = store
        .batch_duplicates("b1", all.last().map(|(k, _)| *k), 10)
        .await
        .unwrap();
    assert!(none_yet.is_empty(), "no duplicate lies past row 7");
    let stored_before_cap = all.len() as i64;

    // Errors past the cap are counted, not stored: the cap falls inside this report's list.
    update.new_errors = (10..10 + MAX_STORED_BATCH_ERRORS as u64).map(error).collect();
    update.counts.errors_total += MAX_STORED_BATCH_ERRORS;
    update.finish = Some(BatchEnd {
        status: BatchStatus::Completed,
        rows_total: Some(3),
        failure: None,
    });
    assert!(store.update_batch("b1", &winner, &update).await.unwrap());
    let job = store.get_batch("b1").await.unwrap().unwrap();
    assert_eq!(job.status, BatchStatus::Completed);
    assert!(store.live_uploads(&here).await.unwrap().is_empty(), "ended: a leftover");
    assert_eq!(job.rows_total, Some(3));
    assert_eq!(job.counts.errors_total, MAX_STORED_BATCH_ERRORS + 5);
    assert!(job.finished_at.is_some());
    let mut read = Vec::new();
    let mut after = None;
    loop {
        let page = store.batch_errors("b1", after, 5000).await.unwrap();
        after = page.last().map(|(key, _)| *key);
        read.extend(page.into_iter().map(|(_, e)| e.row));
        if after.is_none() {
            break;
        }
    }
    assert_eq!(
        read.len() as i64,
        MAX_STORED_BATCH_ERRORS,
        "the first ones found, up to the cap"
    );
    let first_of_the_last_report = MAX_STORED_BATCH_ERRORS - stored_before_cap;
    assert_eq!(read.last().copied(), Some(9 + first_of_the_last_report as u64));
    // A finished job takes no more progress.
    assert!(!store.update_batch("b1", &winner, &update).await.unwrap());
}

async fn a_job_without_progress_is_failed_once(backend: Backend) {
    let (_db, _database, store) = store(backend).await;
    store.create_batch(&ctx(None), &batch("b1")).await.unwrap();
    let mut running = batch("b2");
    running.worker = Some("import-1".into());
    let created = store.create_batch(&ctx(None), &running).await.unwrap().value;
    assert_eq!(
        created.status,
        BatchStatus::Running,
        "an import's job is its own from the start"
    );
    assert!(!store.claim_batch("b2", "w1", Utc::now()).await.unwrap());
    let heartbeat = Utc::now();
    assert!(store.claim_batch("b1", "w1", heartbeat).await.unwrap());

    // Two queued jobs: b4's upload is seen by a replica just before the sweep, b3's never.
    store.create_batch(&ctx(None), &batch("b3")).await.unwrap();
    store.create_batch(&ctx(None), &batch("b4")).await.unwrap();
    let interrupted = BatchFailure::interrupted();
    let early = store
        .fail_stale_batches(
            heartbeat - Duration::seconds(60),
            heartbeat - Duration::seconds(60),
            &interrupted,
            Utc::now(),
        )
        .await
        .unwrap();
    assert!(early.is_empty(), "a fresh heartbeat is not stale");
    let later = heartbeat + Duration::seconds(600);
    let b4 = store
        .queued_batches(&["/tmp/b4.upload".to_owned()], later - Duration::seconds(10))
        .await
        .unwrap();
    assert_eq!(b4.len(), 1);
    let failed = store
        .fail_stale_batches(
            later - Duration::seconds(300),
            later - Duration::seconds(300),
            &interrupted,
            later,
        )
        .await
        .unwrap();
    let mut ids: Vec<&str> = failed.iter().map(|j| j.id.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["b1", "b2", "b3"],
        "b3: a queued job whose upload no replica holds any more"
    );
    assert_eq!(
        store.get_batch("b4").await.unwrap().unwrap().status,
        BatchStatus::Queued,
        "b4 was seen waiting a moment ago"
    );
    let job = store.get_batch("b1").await.unwrap().unwrap();
    assert_eq!(job.status, BatchStatus::Failed);
    assert_eq!(job.failure.unwrap().code, "interrupted");
    // Its worker, back from the dead, may not write any more.
    let update = BatchUpdate {
        counts: BatchCounts::default(),
        new_errors: Vec::new(),
        new_duplicates: Vec::new(),
        events: Vec::new(),
        finish: None,
        at: later,
    };
    assert!(!store.update_batch("b1", "w1", &update).await.unwrap());
    // A job is failed once: a later sweep takes only b4, unseen since.
    let again = store
        .fail_stale_batches(later, later, &interrupted, later)
        .await
        .unwrap();
    assert_eq!(again.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["b4"]);
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// A household of one, principal `number`.
fn household(product: &ProductVersion, number: &str) -> NewHousehold {
    NewHousehold {
        product: product.clone(),
        member_number: number.into(),
        start_date: date("2026-01-01"),
        end_date: None,
        paid_through: None,
        members: vec![NewMember {
            relationship: Relationship::Principal,
            own_number: None,
            person: ValidBeneficiary {
                national_id: None,
                family_name: format!("Famille {number}"),
                given_names: "Kossi".into(),
                sex: Sex::M,
                birth_date: date("1980-01-01"),
                birth_date_precision: BirthDatePrecision::Year,
                phone: None,
                locality: None,
            },
        }],
    }
}

/// The progress of a group: one household processed per outcome, created or skipped.
fn counted(outcomes: &[HouseholdOutcome]) -> BatchUpdate {
    let created = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Registered::Created(_))))
        .count() as i64;
    BatchUpdate {
        counts: BatchCounts {
            rows_processed: outcomes.len() as i64,
            households_created: created,
            households_skipped: outcomes.len() as i64 - created,
            ..BatchCounts::default()
        },
        new_errors: vec![error(1)],
        new_duplicates: Vec::new(),
        events: Vec::new(),
        finish: None,
        at: Utc::now(),
    }
}

/// mut-a's plan, stored.
async fn plan(store: &Arc<dyn Store>) -> ProductVersion {
    let product = ProductVersion {
        product_id: "p1".into(),
        organization: "mut-a".into(),
        layer: Layer::Complementary,
        name: "Plan".into(),
        rules: Vec::new(),
        annual_ceiling_xof: None,
        waiting_period_days: 0,
        grace_period_days: 0,
        excluded_categories: Vec::new(),
        max_dependants: None,
        child_max_age: None,
        effective_from: date("2026-01-01"),
        version: 1,
    };
    store.create_product(&ctx(None), &product).await.unwrap();
    product
}

/// Job `b1`, running, held by worker `w1`.
async fn held_by_w1(store: &Arc<dyn Store>) {
    let mut running = batch("b1");
    running.worker = Some("w1".into());
    store.create_batch(&ctx(None), &running).await.unwrap();
}

/// A group's events, chained in its own transaction, follow those of the changes committed
/// before it that still wait in the queue (the job's own `registration_batch.created`, say), as
/// the chainer would have placed them.
async fn a_groups_events_follow_those_committed_before(backend: Backend) {
    let (db, _database, store) = store(backend).await;
    let product = plan(&store).await;
    held_by_w1(&store).await;
    // Committed, not yet chained: nothing nudges the chainer for it.
    db.execute(
        "INSERT INTO audit_queue (at, organization, subject, action, resource_type, resource_id, request_id) \
         VALUES ('2026-11-30T08:00:01+00:00', 'mut-a', 'clerk', 'test.waiting', 'test', 'w', 'r-waiting')",
    )
    .await;
    store
        .register_batch_group(&ctx(None), &[household(&product, "A-1")], true, "b1", "w1", &counted)
        .await
        .unwrap()
        .expect("w1 holds b1");
    let log = store
        .list_audit_events(
            &passerelle_domain::ports::AuditFilter::default(),
            &passerelle_domain::pagination::PageRequest::first(100),
        )
        .await
        .unwrap();
    let seq_of =
        |action: &str| -> Vec<i64> { log.items.iter().filter(|e| e.action == action).map(|e| e.seq).collect() };
    let waiting = seq_of("test.waiting");
    let group = seq_of("beneficiary.created");
    assert_eq!((waiting.len(), group.len()), (1, 1), "{:?}", log.items);
    assert!(waiting[0] < group[0], "{waiting:?} after {group:?}");
    assert!(seq_of("registration_batch.created")[0] < group[0]);
}

/// A group's households and the progress that counts them are one transaction: a worker that no
/// longer holds its job writes neither, so no household is ever registered that no job counted.
async fn a_group_and_its_progress_are_written_together(backend: Backend) {
    let (_db, _database, store) = store(backend).await;
    let product = plan(&store).await;
    held_by_w1(&store).await;
    let group = [household(&product, "A-1"), household(&product, "A-2")];

    let lost = store
        .register_batch_group(&ctx(None), &group, true, "b1", "w2", &counted)
        .await
        .unwrap();
    assert!(lost.is_none(), "w2 does not hold b1");
    let job = store.get_batch("b1").await.unwrap().unwrap();
    assert_eq!(job.counts, BatchCounts::default());
    let (outcomes, update) = store
        .register_batch_group(&ctx(None), &group, true, "b1", "w1", &counted)
        .await
        .unwrap()
        .expect("w1 holds b1");
    assert!(
        outcomes.iter().all(|o| matches!(o, Ok(Registered::Created(_)))),
        "nothing was written by w2: {outcomes:?}"
    );
    let job = store.get_batch("b1").await.unwrap().unwrap();
    assert_eq!(job.counts, update.counts);
    assert_eq!(job.counts.households_created, 2);
    assert_eq!(store.batch_errors("b1", None, 10).await.unwrap().len(), 1);

    // Failed as stale while its worker still ran: the worker's next group is not written.
    let later = Utc::now() + Duration::seconds(600);
    let failed = store
        .fail_stale_batches(later, later, &BatchFailure::interrupted(), later)
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    let next = [household(&product, "A-3")];
    let late = store
        .register_batch_group(&ctx(None), &next, true, "b1", "w1", &counted)
        .await
        .unwrap();
    assert!(late.is_none());
    let job = store.get_batch("b1").await.unwrap().unwrap();
    assert_eq!((job.status, job.counts.households_created), (BatchStatus::Failed, 2));
    let mut rerun = batch("b2");
    rerun.worker = Some("w3".into());
    store.create_batch(&ctx(None), &rerun).await.unwrap();
    let all = [
        household(&product, "A-1"),
        household(&product, "A-2"),
        household(&product, "A-3"),
    ];
    let (outcomes, _) = store
        .register_batch_group(&ctx(None), &all, true, "b2", "w3", &counted)
        .await
        .unwrap()
        .unwrap();
    let created: Vec<bool> = outcomes
        .iter()
        .map(|o| matches!(o, Ok(Registered::Created(_))))
        .collect();
    assert_eq!(created, [false, false, true], "A-3 was not written by the lost worker");

    // Deactivated by another replica, which this one has yet to hear of: the database refuses
    // the next group, and writes none of it.
    let operator = WriteContext {
        organization: "operator".into(),
        ..ctx(None)
    };
    store.set_organization_active(&operator, "mut-a", false).await.unwrap();
    let mut third = batch("b3");
    third.worker = Some("w4".into());
    store.create_batch(&ctx(None), &third).await.unwrap();
    let refused = store
        .register_batch_group(&ctx(None), &[household(&product, "A-4")], true, "b3", "w4", &counted)
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Conflict { constraint }) if constraint == "organization_deactivated"),
        "{refused:?}"
    );
    let job = store.get_batch("b3").await.unwrap().unwrap();
    assert_eq!(job.counts, BatchCounts::default());
}

macro_rules! on_both_databases {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(passerelle_adapters::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(passerelle_adapters::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_databases!(
    one_worker_claims_a_job_and_only_it_reports,
    a_job_without_progress_is_failed_once,
    a_group_and_its_progress_are_written_together,
    a_groups_events_follow_those_committed_before,
);
