-- The fast path of accounts.services.transfer_create on PostgreSQL (R-TR-1 to R-TR-3, R-TR-7, R-MON-4, R-AU-1).
--
-- One call instead of four statements and the Python between them: lock both accounts in primary key
-- order, read what the rules read, and, only when the transfer goes through and sends no alert, write
-- everything accounts.fastsql's WriteBatch writes. Any other case (an idempotency key already used, a refusal,
-- an alert due) writes nothing and answers 'check': the caller then runs the Python path of the service, the
-- reference, which refuses with its message and figures, replays, or sends the alert (after a call in
-- autocommit mode, in a transaction of its own, which locks again). So this function only has to agree with
-- Python where Python accepts; tests/accounts/test_transfer_function.py checks it, rule by rule and on drawn
-- states.
--
-- Returns the two accounts after the transfer (the columns of accounts.fastsql.ACCOUNT_COLUMNS and the
-- enterprise's company id), each with the outcome, the transfer record's id and the operation's id.
CREATE OR REPLACE FUNCTION eac_transfer_create(
    p_enterprise_id bigint, p_actor_id bigint, p_payer_id bigint, p_payee_id bigint, p_amount numeric,
    p_remark text, p_on date, p_at timestamptz, p_ip inet,
    p_key text, p_key_operation text, p_key_fingerprint text, p_key_at timestamptz, p_result_type text)
RETURNS TABLE (
    outcome text, record_id bigint, operation_id bigint,
    id bigint, account_id text, name text, enterprise_id bigint, verified_company_id text, contact_phone text,
    contact_email text, pay_on_behalf boolean, risk_flag boolean, own_cash numeric, transfer_book_balance numeric,
    credit_limit numeric, outstanding_balance numeric, alert_enabled boolean, alert_threshold numeric,
    alert_sent_at timestamptz, company_id text)
LANGUAGE plpgsql AS $$
DECLARE
    payer accounts_account%ROWTYPE;
    payee accounts_account%ROWTYPE;
    acc accounts_account%ROWTYPE;
    company text;
    found_accounts int := 0;
    overdue numeric;
    key_used boolean;
    available numeric;
    op_id bigint;
    rec_id bigint;
BEGIN
    -- R-TR-7: both rows locked in primary key order.
    FOR acc IN SELECT * FROM accounts_account a WHERE a.id IN (p_payer_id, p_payee_id) ORDER BY a.id
               FOR NO KEY UPDATE LOOP
        found_accounts := found_accounts + 1;
        IF acc.id = p_payer_id THEN payer := acc; ELSE payee := acc; END IF;
    END LOOP;
    IF found_accounts <> 2 THEN
        RETURN QUERY SELECT 'check'::text, NULL::bigint, NULL::bigint, NULL::bigint, NULL, NULL, NULL::bigint, NULL,
            NULL, NULL, NULL::boolean, NULL::boolean, NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric,
            NULL::boolean, NULL::numeric, NULL::timestamptz, NULL;
        RETURN;
    END IF;
    -- Read after the locks (each statement of a function has its own snapshot), in one statement.
    SELECT (SELECT e.company_id FROM accounts_enterprise e WHERE e.id = p_enterprise_id),
           (SELECT SUM(b.unpaid_amount) FROM accounts_bill b
             WHERE b.account_id = p_payer_id AND b.unpaid_amount > 0 AND b.due_date < p_on),
           p_key IS NOT NULL AND EXISTS (SELECT 1 FROM core_idempotencykey k WHERE k.key = p_key)
      INTO company, overdue, key_used;
    IF COALESCE(  -- a condition that could not be decided (NULL) is a case for the Python path too
        -- R-TR-7: a key used before is replayed (or refused) by the Python path.
        key_used
        -- R-TR-1, R-ORG-5, R-CR-6: both are fund accounts of the actor's enterprise.
        OR payer.enterprise_id IS DISTINCT FROM p_enterprise_id OR payee.enterprise_id IS DISTINCT FROM p_enterprise_id
        OR company IS NULL
        OR COALESCE(payer.verified_company_id, '') = '' OR payer.verified_company_id <> company
        OR COALESCE(payee.verified_company_id, '') = '' OR payee.verified_company_id <> company
        OR payer.pay_on_behalf OR payer.risk_flag OR payee.pay_on_behalf OR payee.risk_flag
        -- R-TR-2: the payer is not overdue, and the amount is at most the transferable amount.
        OR COALESCE(overdue, 0) > 0
        OR p_amount > GREATEST(0, LEAST(payer.own_cash, payer.own_cash + payer.transfer_book_balance
                                        + payer.credit_limit - payer.outstanding_balance)), true)
    THEN
        outcome := 'check';
    END IF;
    IF outcome IS NULL THEN
        -- R-AL-3: an alert to send or to clear after the transfer is the Python path's to do.
        FOREACH acc IN ARRAY ARRAY[payer, payee] LOOP
            available := acc.own_cash + acc.transfer_book_balance + acc.credit_limit - acc.outstanding_balance
                         + CASE WHEN acc.id = p_payer_id THEN -p_amount ELSE p_amount END;
            IF acc.alert_enabled AND ((available < acc.alert_threshold AND acc.alert_sent_at IS NULL)
                                      OR (available >= acc.alert_threshold AND acc.alert_sent_at IS NOT NULL)) THEN
                outcome := 'check';
            END IF;
        END LOOP;
    END IF;
    IF outcome IS NOT NULL THEN
        RETURN QUERY SELECT outcome, NULL::bigint, NULL::bigint, NULL::bigint, NULL, NULL, NULL::bigint, NULL,
            NULL, NULL, NULL::boolean, NULL::boolean, NULL::numeric, NULL::numeric, NULL::numeric, NULL::numeric,
            NULL::boolean, NULL::numeric, NULL::timestamptz, NULL;
        RETURN;
    END IF;

    -- Every write in one statement (each statement of a function costs its own executor start, snapshot and
    -- checks of the tables' CHECK constraints): R-MON-4 the operation, its two ledger rows and the balances they
    -- change (both rows already locked); R-TR-3 the pair's remaining revocable and total transferred; the
    -- transfer record; R-AU-1 the same audit event as accounts.services writes; R-TR-7 the idempotency key.
    WITH op AS (
        INSERT INTO accounts_operation (kind, external_amount, actor_id, description, created_at)
            VALUES ('transfer', 0, p_actor_id, p_remark, p_at) RETURNING accounts_operation.id
    ), ledger AS (
        INSERT INTO accounts_ledgerentry (operation_id, account_id, bucket, amount, created_at)
            SELECT op.id, p_payer_id, 'own_cash', -p_amount, p_at FROM op
            UNION ALL SELECT op.id, p_payee_id, 'transfer_book', p_amount, p_at FROM op
    ), balances AS (
        UPDATE accounts_account a
            SET own_cash = CASE WHEN a.id = p_payer_id THEN ROUND(a.own_cash - p_amount, 2) ELSE a.own_cash END,
                transfer_book_balance = CASE WHEN a.id = p_payee_id
                                             THEN ROUND(a.transfer_book_balance + p_amount, 2)
                                             ELSE a.transfer_book_balance END
            WHERE a.id IN (p_payer_id, p_payee_id)
    ), pair AS (
        INSERT INTO accounts_transferpair (source_id, target_id, remaining_revocable, total_transferred)
            VALUES (p_payer_id, p_payee_id, p_amount, p_amount)
            ON CONFLICT (source_id, target_id) DO UPDATE SET
                remaining_revocable = ROUND(accounts_transferpair.remaining_revocable + excluded.remaining_revocable, 2),
                total_transferred = ROUND(accounts_transferpair.total_transferred + excluded.total_transferred, 2)
    ), rec AS (
        INSERT INTO accounts_transferrecord (kind, payer_id, payee_id, amount, remark, actor_id, operation_id,
                                             created_at)
            SELECT 'transfer', p_payer_id, p_payee_id, p_amount, p_remark, p_actor_id, op.id, p_at FROM op
            RETURNING accounts_transferrecord.id
    ), audit AS (
        INSERT INTO core_auditevent (enterprise_id, actor_id, action, object_type, object_id, object_repr, before,
                                     after, ip_address, created_at)
            SELECT p_enterprise_id, p_actor_id, 'transfer', p_result_type, rec.id::text,
                   'TransferRecord object (' || rec.id || ')',
                   jsonb_build_object(
                       'payer', jsonb_build_object('own_cash', payer.own_cash::text,
                           'transfer_book_balance', payer.transfer_book_balance::text,
                           'credit_limit', payer.credit_limit::text,
                           'outstanding_balance', payer.outstanding_balance::text),
                       'payee', jsonb_build_object('own_cash', payee.own_cash::text,
                           'transfer_book_balance', payee.transfer_book_balance::text,
                           'credit_limit', payee.credit_limit::text,
                           'outstanding_balance', payee.outstanding_balance::text)),
                   jsonb_build_object(
                       'payer', jsonb_build_object('own_cash', (payer.own_cash - p_amount)::text,
                           'transfer_book_balance', payer.transfer_book_balance::text,
                           'credit_limit', payer.credit_limit::text,
                           'outstanding_balance', payer.outstanding_balance::text),
                       'payee', jsonb_build_object('own_cash', payee.own_cash::text,
                           'transfer_book_balance', (payee.transfer_book_balance + p_amount)::text,
                           'credit_limit', payee.credit_limit::text,
                           'outstanding_balance', payee.outstanding_balance::text),
                       'amount', p_amount::text),
                   p_ip, p_at
            FROM rec
    ), idem AS (
        INSERT INTO core_idempotencykey (key, operation, request_fingerprint, result_type, result_id, created_at)
            SELECT p_key, p_key_operation, p_key_fingerprint, p_result_type, rec.id, p_key_at FROM rec
            WHERE p_key IS NOT NULL
    )
    SELECT op.id, rec.id INTO op_id, rec_id FROM op, rec;
    -- The two accounts as the update above left them (no second read), in primary key order.
    payer.own_cash := ROUND(payer.own_cash - p_amount, 2);
    payee.transfer_book_balance := ROUND(payee.transfer_book_balance + p_amount, 2);
    FOREACH acc IN ARRAY CASE WHEN p_payer_id < p_payee_id THEN ARRAY[payer, payee] ELSE ARRAY[payee, payer] END LOOP
        outcome := 'done'; record_id := rec_id; operation_id := op_id;
        id := acc.id; account_id := acc.account_id; name := acc.name; enterprise_id := acc.enterprise_id;
        verified_company_id := acc.verified_company_id; contact_phone := acc.contact_phone;
        contact_email := acc.contact_email; pay_on_behalf := acc.pay_on_behalf; risk_flag := acc.risk_flag;
        own_cash := acc.own_cash; transfer_book_balance := acc.transfer_book_balance;
        credit_limit := acc.credit_limit; outstanding_balance := acc.outstanding_balance;
        alert_enabled := acc.alert_enabled; alert_threshold := acc.alert_threshold;
        alert_sent_at := acc.alert_sent_at; company_id := company;
        RETURN NEXT;
    END LOOP;
END;
$$;
