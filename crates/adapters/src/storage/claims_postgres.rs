// A claim submission in one statement: PostgreSQL only, included from `postgres.rs`.
//
// A submission is the hot write of the system. Done as a transaction it costs ten round trips
// (begin, key, usage lock, claim, usage, outbox, audit, response, commit), and on two cores the
// round trips, not the work, are what the database spends its time on. Here the person's usage
// read by the caller is written back with compare-and-set in the same statement that inserts
// the claim, the idempotency key with its response, the outbox rows and the queued audit event:
// one round trip, atomic by itself. When the usage moved meanwhile nothing is written and the
// locking path of `claims.rs` prices again; when the key or the external id is taken, the
// unique violation undoes the whole statement and the locking path replays or refuses.

impl PgStore {
    /// `Ok(None)`: nothing was written, take the locking path.
    async fn submit_optimistically(
        &self,
        ctx: &WriteContext,
        usage: Option<&UsageKey>,
        seen: Xof,
        price: &PriceFn<'_>,
    ) -> Result<Option<Written<Claim>>, ClaimError> {
        let claim = price(seen).map_err(ClaimError::Refused)?;
        let body = claim_json(&claim)?;
        let data = serde_json::to_value(&claim).map_err(|e| StoreError::Internal(e.to_string()))?;
        let event = ctx.audit("claim.submitted", "claim", &claim.id);
        let event_id = uuid::Uuid::now_v7().to_string();
        let audience = claim_audience(&claim).map(|o| o.map(str::to_owned));

        let mut q = sqlx::QueryBuilder::<Db>::new("WITH ");
        match usage {
            Some(key) => {
                // Inserts the row at the new total, or moves it only if it still holds `seen`.
                q.push("cas AS (INSERT INTO ceiling_usage (beneficiary, product, plan_year, used_xof) SELECT beneficiary, product, ")
                    .push_bind(key.plan_year)
                    .push(", ")
                    .push_bind(seen.value().saturating_add(counted(&claim).value()))
                    .push(" FROM coverages WHERE id = ")
                    .push_bind(key.coverage.clone())
                    .push(FOR_KEY_SHARE)
                    .push(
                        " ON CONFLICT (beneficiary, product, plan_year) DO UPDATE SET used_xof = EXCLUDED.used_xof \
                         WHERE ceiling_usage.used_xof = ",
                    )
                    .push_bind(seen.value())
                    .push(" RETURNING 1), ok AS (SELECT 1 FROM cas)");
            }
            None => {
                q.push("ok AS (SELECT 1)");
            }
        }
        q.push(
            ", claim AS (INSERT INTO claims (id, provider, submitter, external_id, beneficiary, service_date, \
             status, base_payer, routed_to, settlement, version, body, created_at, updated_at) SELECT ",
        );
        {
            let mut values = q.separated(", ");
            values
                .push_bind(claim.id.clone())
                .push_bind(claim.provider.clone())
                .push_bind(claim.submitter.clone())
                .push_bind(claim.external_id.clone())
                .push_bind(claim.beneficiary.clone())
                .push_bind(claim.service_date)
                .push_bind(claim.status.as_str())
                .push_bind(claim.base_payer.clone())
                .push_bind(claim.routed_to.clone())
                .push("NULL")
                .push_bind(i64::from(claim.version))
                .push_bind(body.clone())
                .push_bind(ctx.at)
                .push_bind(ctx.at);
        }
        q.push(" FROM ok)");
        if let Some(idem) = &ctx.idempotency {
            q.push(
                ", idem AS (INSERT INTO idempotency_keys (organization, key, fingerprint, canonical_fingerprint, \
                 response, created_at) SELECT ",
            );
            let mut values = q.separated(", ");
            values
                .push_bind(ctx.organization.clone())
                .push_bind(idem.key.clone())
                .push_bind(idem.fingerprint.clone())
                .push_bind(idem.canonical.clone())
                .push_bind(body)
                .push_bind(ctx.at);
            q.push(" FROM ok)");
        }
        // The same rows `enqueue` writes, for `claim.submitted`.
        q.push(
            ", outbox AS (INSERT INTO webhook_deliveries (id, subscription, event_id, event_type, payload, status, \
             attempts, next_attempt_at, created_at) SELECT ",
        )
        .push_bind(event_id.clone())
        .push(" || ':' || s.id, s.id, ")
        .push_bind(event_id)
        .push(", 'claim.submitted', ")
        .push_bind(outbox_payload(ctx, Some(&ctx.organization), "claim", &data))
        .push(", 'pending', 0, ")
        .push_bind(ctx.at)
        .push(", ")
        .push_bind(ctx.at)
        .push(
            " FROM webhook_subscriptions s JOIN organizations o ON o.id = s.organization \
                          WHERE EXISTS (SELECT 1 FROM ok) AND s.deleted_at IS NULL AND o.deactivated_at IS NULL \
             AND s.events LIKE '% claim.submitted %' \
             AND (s.organization IN (",
        );
        {
            let mut parties = q.separated(", ");
            for party in audience {
                parties.push_bind(party);
            }
        }
        q.push(
            ") OR o.kind IN ('operator', 'auditor'))), audit AS (INSERT INTO audit_queue (at, organization, \
             subject, action, resource_type, resource_id, request_id) SELECT ",
        );
        {
            let mut values = q.separated(", ");
            values
                .push_bind(event.at)
                .push_bind(event.organization)
                .push_bind(event.subject)
                .push_bind(event.action)
                .push_bind(event.resource_type)
                .push_bind(event.resource_id)
                .push_bind(event.request_id);
        }
        q.push(" FROM ok) SELECT count(*) FROM ok");

        let written: Result<(i64,), sqlx::Error> = q.build_query_as().fetch_one(&self.write).await;
        // One statement is its own transaction: a connection lost under it may have lost only
        // the answer to its commit, so it is read as a commit's failure (`Indeterminate`: retry
        // with the same Idempotency-Key, which replays it if it was written), never as "nothing
        // was changed".
        match written.map_err(commit_err) {
            Ok((1,)) => {}
            Ok(_) | Err(StoreError::Conflict { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        self.chain.nudge();
        Ok(Some(Written {
            value: claim,
            replayed: false,
        }))
    }
}
