// Erasure of personal data past the deployment's retention period, shared by both databases
// through `include!` like `shared.rs`.

use passerelle_domain::retention::{erased_birth_date, ErasedRecord, Erasure, ERASED_ACTION};

/// People erased per transaction: each holds its people locked, so that registrations and
/// corrections of others wait no longer than a short write's time.
const ERASE_CHUNK: i64 = 200;

/// A coverage `c` over before the cut-off (`$1` the day, `$2` its first instant): ended before
/// that day; terminated before it without ever starting (no end date); or a dependant's whose
/// household (the principal's coverage `h`) ended so, when that coverage is terminated or its
/// person erased (`gone`, a condition on `h.beneficiary`). A terminated coverage never changes
/// again, and no coverage of an erased person is extended (`update_coverage`), so that no one
/// erased here is ever covered again; a household merely past its end date while its principal
/// is still covered elsewhere may yet be extended, and keeps its dependants.
fn over(c: &str, h: &str, gone: &str) -> String {
    let ended = |x: &str| {
        format!(
            "(({x}.end_date IS NOT NULL AND {x}.end_date < $1) \
             OR ({x}.status = 'terminated' AND {x}.end_date IS NULL AND {x}.updated_at < $2))"
        )
    };
    format!(
        "({} OR EXISTS (SELECT 1 FROM coverages {h} WHERE {h}.id = {c}.principal_coverage AND {} \
         AND ({h}.status = 'terminated' OR {gone})))",
        ended(c),
        ended(h)
    )
}

/// A person `b`, not erased nor merged away, every coverage of whom is [`over`] (and who holds
/// one: every person is registered with one, and a merge moves them all away).
fn erasable(gone: &str) -> String {
    erasable_as("b", gone)
}

/// [`erasable`] of the person named `b` in the statement.
fn erasable_as(b: &str, gone: &str) -> String {
    format!(
        "{b}.erased_at IS NULL AND {b}.merged_into IS NULL \
         AND EXISTS (SELECT 1 FROM coverages c WHERE c.beneficiary = {b}.id) \
         AND NOT EXISTS (SELECT 1 FROM coverages c WHERE c.beneficiary = {b}.id AND NOT {})",
        over("c", "h", gone)
    )
}

/// The principal of household `h` erased already.
const PRINCIPAL_ERASED: &str =
    "EXISTS (SELECT 1 FROM beneficiaries g WHERE g.id = h.beneficiary AND g.erased_at IS NOT NULL)";

/// The principal of household `h` erased already, or to be erased by one of this run's first
/// `passes` passes (for the dry run's count, which changes nothing between passes): the run's
/// pass `k` erases those whose households' principals were erased before it, so a principal's
/// erasability at depth `k` rests on its own households' at depth `k - 1`. Each depth aliases its
/// person apart; `h` inside refers to the nearest household, as [`over`] writes it.
fn principal_erased_by_pass(passes: u32) -> String {
    match passes.checked_sub(1) {
        None => PRINCIPAL_ERASED.to_owned(),
        Some(before) => {
            let g = format!("g{passes}");
            format!(
                "EXISTS (SELECT 1 FROM beneficiaries {g} WHERE {g}.id = h.beneficiary AND ({g}.erased_at IS NOT NULL \
                 OR ({})))",
                erasable_as(&g, &principal_erased_by_pass(before))
            )
        }
    }
}

/// Passes a dry run follows at most: a household whose principal is a dependant in another
/// household, whose principal is a dependant in a third, and so on, this many deep. Families
/// chain two or three households at most; the bound only keeps the statement's size finite.
const DRY_RUN_PASSES: u32 = 16;

/// A record `b` merged into a person erased already.
const MERGED_INTO_ERASED: &str = "b.erased_at IS NULL AND b.merged_into IS NOT NULL \
     AND EXISTS (SELECT 1 FROM beneficiaries t WHERE t.id = b.merged_into AND t.erased_at IS NOT NULL)";

async fn erase_personal_data(
    store: &This,
    ctx: &WriteContext,
    before: NaiveDate,
    dry_run: bool,
) -> Result<Erasure, StoreError> {
    let since = before.and_time(chrono::NaiveTime::MIN).and_utc();
    if dry_run {
        // The people the run's passes would erase, counted as deep as the run would go: each
        // depth adds those a pass more would free, until one adds no one (then no later pass
        // would either, as the set only grows with the principals erased).
        let mut passes = 0;
        let mut people = -1;
        let people_sql = loop {
            let sql = format!(
                "SELECT b.id FROM beneficiaries b WHERE {}",
                erasable(&principal_erased_by_pass(passes))
            );
            let (count,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM ({sql}) p"))
                .bind(before)
                .bind(since)
                .fetch_one(&store.read)
                .await
                .map_err(db_err)?;
            if count == people || passes == DRY_RUN_PASSES {
                people = count;
                break sql;
            }
            people = count;
            passes += 1;
        };
        let (merged,): (i64,) = sqlx::query_as(&format!(
            "SELECT count(*) FROM beneficiaries m WHERE m.erased_at IS NULL AND m.merged_into IS NOT NULL \
             AND (m.merged_into IN ({people_sql}) \
                  OR EXISTS (SELECT 1 FROM beneficiaries t WHERE t.id = m.merged_into AND t.erased_at IS NOT NULL))"
        ))
        .bind(before)
        .bind(since)
        .fetch_one(&store.read)
        .await
        .map_err(db_err)?;
        // The deliveries of those people and of the records merged into them or into someone
        // erased already, as the run would forget them: judged for each delivery's person, not
        // as a set of everyone (which each page of deliveries would compute again).
        let gone = principal_erased_by_pass(passes);
        let theirs = format!(
            "(b.erased_at IS NOT NULL OR ({}) OR EXISTS (SELECT 1 FROM beneficiaries t WHERE t.id = b.merged_into \
             AND (t.erased_at IS NOT NULL OR ({}))))",
            erasable_as("b", &gone),
            erasable_as("t", &gone)
        );
        let webhook_deliveries = forget_changed_deliveries(store, &theirs, before, since, true).await?;
        return Ok(Erasure {
            people: u64::try_from(people).unwrap_or_default(),
            merged_records: u64::try_from(merged).unwrap_or_default(),
            webhook_deliveries,
        });
    }
    // Each pass may free the dependants of the principals it erased: passes until one finds
    // no one.
    let mut people = 0;
    loop {
        let erased = erase_where(store, ctx, &erasable(PRINCIPAL_ERASED), before, since).await?;
        if erased == 0 {
            break;
        }
        people += erased;
    }
    let merged_records = erase_where(store, ctx, MERGED_INTO_ERASED, before, since).await?;
    // Every erased person's, not only this run's: a run stopped before this point left theirs.
    let webhook_deliveries = forget_changed_deliveries(store, "b.erased_at IS NOT NULL", before, since, false).await?;
    Ok(Erasure {
        people,
        merged_records,
        webhook_deliveries,
    })
}

/// Deliveries looked at per round of [`forget_changed_deliveries`].
const DELIVERY_PAGE: i64 = 500;

/// Forgets (or, for a dry run, counts) the `beneficiary.changed` deliveries, whatever their
/// status, whose person `b` meets `condition` (binding `$1` and `$2` as [`over`] does): each
/// holds the person as corrected, and a failed one would be sent again, names and all, on its
/// subscriber's request. Read in pages of deliveries in id order outside any write, each
/// payload's person read here rather than in SQL: a payload that does not read (damaged by
/// hand) names no one, where a JSON cast in the statement would stop the whole run. No delivery
/// of an erased person is written any more (a correction of them is 410), so a page read is
/// still true when its deliveries are deleted.
async fn forget_changed_deliveries(
    store: &This,
    condition: &str,
    before: NaiveDate,
    since: chrono::DateTime<chrono::Utc>,
    dry_run: bool,
) -> Result<u64, StoreError> {
    let mut forgotten = 0;
    let mut after = String::new();
    loop {
        let page: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, payload FROM webhook_deliveries WHERE event_type = 'beneficiary.changed' AND id > $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(&after)
        .bind(DELIVERY_PAGE)
        .fetch_all(&store.read)
        .await
        .map_err(db_err)?;
        let Some((last, _)) = page.last() else {
            return Ok(forgotten);
        };
        after = last.clone();
        let people: Vec<(&str, String)> = page
            .iter()
            .filter_map(|(id, payload)| {
                let stored: serde_json::Value = serde_json::from_str(payload).ok()?;
                Some((id.as_str(), stored["data"]["id"].as_str()?.to_owned()))
            })
            .collect();
        if people.is_empty() {
            continue;
        }
        let mut named: Vec<&str> = people.iter().map(|(_, person)| person.as_str()).collect();
        named.sort_unstable();
        named.dedup();
        let list: Vec<String> = (0..named.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "SELECT b.id FROM beneficiaries b WHERE {condition} AND b.id IN ({})",
            list.join(", ")
        );
        let mut query = sqlx::query_scalar::<_, String>(&sql).bind(before).bind(since);
        for id in &named {
            query = query.bind(*id);
        }
        let gone: std::collections::HashSet<String> = query
            .fetch_all(&store.read)
            .await
            .map_err(db_err)?
            .into_iter()
            .collect();
        let ids: Vec<String> = people
            .iter()
            .filter(|(_, person)| gone.contains(person))
            .map(|(id, _)| (*id).to_owned())
            .collect();
        if ids.is_empty() {
            continue;
        }
        if dry_run {
            forgotten += ids.len() as u64;
            continue;
        }
        let mut tries = 0;
        forgotten += loop {
            match forget_these(store, &ids).await {
                // A deadlock with the hourly forgetting, rolled back whole: the page again.
                Err(StoreError::Contention(_)) if tries < 3 => tries += 1,
                other => break other?,
            }
        };
    }
}

async fn forget_these(store: &This, ids: &[String]) -> Result<u64, StoreError> {
    let mut tx = store.begin_write().await?;
    let forgotten = delete_deliveries(&mut tx, ids).await?;
    store.commit(tx).await?;
    Ok(forgotten)
}

/// Erases the people `b` meeting `condition` (binding `$1` and `$2` as [`over`] does),
/// in id order, a chunk per transaction. Each chunk is found, locked, and judged again under
/// the lock: on PostgreSQL a coverage committed while the lock was awaited (a registration
/// holds its person shared until it commits) is seen by the next statement, and its person
/// kept.
async fn erase_where(
    store: &This,
    ctx: &WriteContext,
    condition: &str,
    before: NaiveDate,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<u64, StoreError> {
    let mut erased = 0u64;
    let mut after = String::new();
    loop {
        let mut tries = 0;
        let chunk = loop {
            match erase_chunk(store, ctx, condition, before, since, &after).await {
                // A deadlock with a registry change, rolled back whole: the chunk again.
                Err(StoreError::Contention(_)) if tries < 3 => tries += 1,
                other => break other?,
            }
        };
        let Some((last, count)) = chunk else {
            return Ok(erased);
        };
        erased += count;
        after = last;
        // The service's own writes, waiting on SQLite's single writer, go between two chunks.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// One chunk after the id `after`: the last id looked at and how many were erased, or `None`
/// when no one is left. The chunk is found outside the write (a search over every person, which
/// on SQLite would hold the single writer, and every write of the service with it, for seconds
/// a few million people), then locked and judged again inside it.
async fn erase_chunk(
    store: &This,
    ctx: &WriteContext,
    condition: &str,
    before: NaiveDate,
    since: chrono::DateTime<chrono::Utc>,
    after: &str,
) -> Result<Option<(String, u64)>, StoreError> {
    let found: Vec<(String,)> = sqlx::query_as(&format!(
        "SELECT b.id FROM beneficiaries b WHERE b.id > $3 AND {condition} ORDER BY b.id LIMIT $4"
    ))
    .bind(before)
    .bind(since)
    .bind(after)
    .bind(ERASE_CHUNK)
    .fetch_all(&store.read)
    .await
    .map_err(db_err)?;
    let Some((last,)) = found.last().cloned() else {
        return Ok(None);
    };
    let mut tx = store.begin_write().await?;
    let ids: Vec<&str> = found.iter().map(|(id,)| id.as_str()).collect();
    let mut lock = sqlx::QueryBuilder::<Db>::new("SELECT id FROM beneficiaries WHERE id IN (");
    let mut list = lock.separated(", ");
    for id in &ids {
        list.push_bind(*id);
    }
    lock.push(format!(") ORDER BY id{FOR_UPDATE}"));
    lock.build().fetch_all(&mut *tx).await.map_err(db_err)?;
    // `condition` names `$1` and `$2`; the ids follow them.
    let list: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!(
        "SELECT b.id, b.birth_date, b.version, b.merged_by FROM beneficiaries b WHERE {condition} AND b.id IN ({})",
        list.join(", ")
    );
    let mut still = sqlx::query_as::<_, (String, NaiveDate, i64, Option<String>)>(&sql)
        .bind(before)
        .bind(since);
    for id in &ids {
        still = still.bind(*id);
    }
    let still = still.fetch_all(&mut *tx).await.map_err(db_err)?;
    let mut events = Vec::with_capacity(still.len());
    let mut announced = Vec::with_capacity(still.len());
    for (id, birth_date, version, merged_by) in &still {
        sqlx::query(
            "UPDATE beneficiaries SET family_name = '', given_names = '', match_key = '', \
             nid_country = NULL, nid_type = NULL, nid_value = NULL, phone = NULL, \
             region = NULL, district = NULL, commune = NULL, birth_date = $2, birth_date_precision = 'year', \
             erased_at = $3, version = version + 1 WHERE id = $1",
        )
        .bind(id)
        .bind(erased_birth_date(*birth_date))
        .bind(ctx.at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        events.push(ctx.audit(ERASED_ACTION, "beneficiary", id));
        let record = ErasedRecord {
            id: id.clone(),
            version: u32::try_from(version + 1).map_err(|e| StoreError::Internal(e.to_string()))?,
            erased_at: ctx.at,
        };
        // A record merged away is the merging organisation's to know of (the person's other
        // organisations never saw it: 404), as its merge was.
        announced.push((merged_by.clone(), record));
    }
    announce_erasures(&mut tx, ctx, &announced).await?;
    queue_events(&mut tx, &events).await?;
    store.commit(tx).await?;
    Ok(Some((last, still.len() as u64)))
}

/// `beneficiary.erased` to the organisations holding any coverage of each person (every one of
/// them has ended), or, for a record merged away (`merged_by` given), to the organisation that
/// merged it; and to operators and auditors. In the erasure's transaction: one statement per
/// chunk.
async fn announce_erasures(
    tx: &mut Tx,
    ctx: &WriteContext,
    records: &[(Option<String>, ErasedRecord)],
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let mut insert = sqlx::QueryBuilder::<Db>::new("WITH v (event_id, person, merged_by, payload) AS (");
    let mut payloads = Vec::with_capacity(records.len());
    for (_, record) in records {
        let data = serde_json::to_value(record).map_err(|e| StoreError::Internal(e.to_string()))?;
        payloads.push(outbox_payload(
            ctx,
            Some(&ctx.organization),
            "beneficiary_erasure",
            &data,
        ));
    }
    insert.push_values(
        records.iter().zip(payloads),
        |mut row, ((merged_by, record), payload)| {
            row.push_bind(uuid::Uuid::now_v7().to_string())
                .push_bind(record.id.clone())
                .push_bind(merged_by.clone())
                .push_bind(payload);
        },
    );
    push_outbox_rows(
        &mut insert,
        ctx,
        ERASED_ACTION,
        "s.organization = v.merged_by OR (v.merged_by IS NULL \
         AND s.organization IN (SELECT c.organization FROM coverages c WHERE c.beneficiary = v.person))",
    );
    insert.build().execute(&mut **tx).await.map_err(db_err)?;
    Ok(())
}
