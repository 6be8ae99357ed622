/**
 * The `MetricsOutbox` Durable Object: sealed metrics batches wait here, in SQLite, until the
 * control plane acknowledges them. A restarted or crashed gateway loses at most the batch that
 * was still being aggregated in an isolate (a few seconds), never a sealed one.
 *
 * - `enqueue(batch)` stores a batch (idempotent by batch id) and arms the alarm.
 * - `alarm()` delivers batches oldest first as signed `POST`s to PLUGYARD_INGEST_URL; a batch is
 *   deleted only on `200`. Transport errors, `5xx` and `401` retry with exponential backoff
 *   (doubling from {@link BASE_BACKOFF_MS} up to {@link MAX_BACKOFF_MS}); any other `4xx` means
 *   the control plane will never take it: it is deleted and counted as dropped.
 * - The outbox is bounded ({@link maxPending}); when a new batch would exceed it, the oldest
 *   batch is deleted and what it held is counted as dropped.
 * - Dropped counters are attached to the next batch the first time it is sent (and zeroed in the
 *   same transaction), so a resent batch carries the same body and is never counted twice.
 *
 * See docs/gateway-protocol.md, "Metrics ingest".
 */
import { DurableObject } from "cloudflare:workers";
import { addDropped } from "./metrics.js";

const BASE_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 8000;
const DEFAULT_MAX_PENDING = 2000;
/** Batches delivered per alarm run before yielding (the alarm re-arms at once). */
const PER_RUN = 50;
const encoder = new TextEncoder();

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS batches (
     seq INTEGER PRIMARY KEY AUTOINCREMENT, batch_id TEXT NOT NULL UNIQUE, body TEXT NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0)`,
];

/**
 * Signs one request as docs/gateway-protocol.md, "Signing", describes.
 * @param {string} secret
 * @param {string} method
 * @param {string} path
 * @param {string} body
 * @returns {Promise<Record<string, string>>}
 */
export async function signHeaders(secret, method, path, body) {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const nonce = crypto.randomUUID().replaceAll("-", "");
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(
    await crypto.subtle.sign("HMAC", key, encoder.encode(`${timestamp}.${nonce}.${method}.${path}.${body}`)),
  );
  const hex = [...mac].map((b) => b.toString(16).padStart(2, "0")).join("");
  return {
    "x-plugyard-timestamp": timestamp,
    "x-plugyard-nonce": nonce,
    "x-plugyard-signature": `v1=${hex}`,
  };
}

/** @param {any} env @returns {number} */
function maxPending(env) {
  const value = Number(env.METRICS_MAX_PENDING);
  return env.METRICS_MAX_PENDING && Number.isSafeInteger(value) && value > 0 ? value : DEFAULT_MAX_PENDING;
}

export class MetricsOutbox extends DurableObject {
  /**
   * @param {DurableObjectState} ctx
   * @param {any} env
   */
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ctx.storage.transactionSync(() => {
      for (const statement of SCHEMA) this.sql.exec(statement);
      this.sql.exec(
        `INSERT INTO meta (key, value) VALUES ('gateway_id', ?) ON CONFLICT (key) DO NOTHING`,
        crypto.randomUUID(),
      );
    });
    /** @type {string | null} */
    this.lastError = null;
    /** @type {number | null} */
    this.lastDeliveryAt = null;
    /** @type {number | null} */
    this.nextAttemptAt = null;
    // Alarms set before a crash may not survive it: re-arm when anything is waiting.
    ctx.blockConcurrencyWhile(async () => {
      if (this.pendingCount() && (await ctx.storage.getAlarm()) == null) {
        await ctx.storage.setAlarm(Date.now());
      }
    });
  }

  /** @param {string} key @returns {string | null} */
  meta(key) {
    const rows = this.sql.exec(`SELECT value FROM meta WHERE key = ?`, key).toArray();
    return rows.length ? String(rows[0].value) : null;
  }

  /** @param {string} key @param {number} delta */
  bump(key, delta) {
    if (!delta) return;
    this.sql.exec(
      `INSERT INTO meta (key, value) VALUES (?, ?)
       ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + CAST(excluded.value AS INTEGER)`,
      key,
      String(delta),
    );
  }

  /** @returns {number} */
  pendingCount() {
    return Number(this.sql.exec(`SELECT count(*) AS n FROM batches`).one().n);
  }

  /**
   * Counts a batch that will never be delivered.
   * @param {import("./metrics.js").Batch} batch
   */
  countDropped(batch) {
    /** @type {import("./metrics.js").Dropped} */
    const counts = { requests: 0, logs: 0, batches: 0 };
    addDropped(counts, batch);
    this.bump("dropped_requests", counts.requests);
    this.bump("dropped_logs", counts.logs);
    this.bump("dropped_batches", counts.batches);
    this.bump("dropped_egress", counts.egress ?? 0);
  }

  /**
   * Stores a sealed batch (a batch id already held is ignored) and arms delivery.
   * @param {import("./metrics.js").Batch} batch
   * @returns {Promise<{pending: number}>}
   */
  async enqueue(batch) {
    const limit = maxPending(this.env);
    const pending = this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        `INSERT INTO batches (batch_id, body) VALUES (?, ?) ON CONFLICT (batch_id) DO NOTHING`,
        batch.batch_id,
        JSON.stringify(batch),
      );
      let count = this.pendingCount();
      while (count > limit) {
        const oldest = this.sql.exec(`SELECT seq, body FROM batches ORDER BY seq LIMIT 1`).one();
        this.sql.exec(`DELETE FROM batches WHERE seq = ?`, oldest.seq);
        this.countDropped(JSON.parse(String(oldest.body)));
        count -= 1;
      }
      return count;
    });
    if (this.nextAttemptAt == null && (await this.ctx.storage.getAlarm()) == null) {
      await this.ctx.storage.setAlarm(Date.now());
    }
    return { pending };
  }

  /** Delivers waiting batches; re-arms itself while any remain. */
  async alarm() {
    this.nextAttemptAt = null;
    const url = this.env.INGEST_URL;
    const secret = this.env.SIGNING_SECRET;
    if (typeof url !== "string" || !url || typeof secret !== "string" || !secret) {
      this.lastError = "PLUGYARD_INGEST_URL or PLUGYARD_GATEWAY_SECRET is not set";
      return;
    }
    for (let i = 0; i < PER_RUN; i++) {
      const row = this.sql.exec(`SELECT seq, body, attempts FROM batches ORDER BY seq LIMIT 1`).toArray()[0];
      if (!row) return;
      const body = row.attempts === 0 ? this.attachDropped(Number(row.seq), String(row.body)) : String(row.body);
      const outcome = await this.send(url, secret, body);
      if (outcome === "retry") {
        const attempts = Number(row.attempts) + 1;
        this.sql.exec(`UPDATE batches SET attempts = ? WHERE seq = ?`, attempts, row.seq);
        const delay = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** Math.min(attempts - 1, 10));
        this.nextAttemptAt = Date.now() + delay;
        await this.ctx.storage.setAlarm(this.nextAttemptAt);
        return;
      }
      this.ctx.storage.transactionSync(() => {
        this.sql.exec(`DELETE FROM batches WHERE seq = ?`, row.seq);
        const batch = JSON.parse(body);
        if (outcome === "rejected") {
          this.countDropped(batch);
        } else {
          this.bump("delivered_batches", 1);
          // Totals reported to the control plane stay visible in health.
          this.bump("reported_dropped_requests", batch.dropped.requests);
          this.bump("reported_dropped_logs", batch.dropped.logs);
          this.bump("reported_dropped_batches", batch.dropped.batches);
          this.bump("reported_dropped_egress", batch.dropped.egress ?? 0);
        }
      });
    }
    await this.ctx.storage.setAlarm(Date.now());
  }

  /**
   * Before a batch's first attempt, moves the dropped counters into its body (one transaction),
   * so every later attempt sends the same bytes.
   * @param {number} seq
   * @param {string} body
   * @returns {string}
   */
  attachDropped(seq, body) {
    return this.ctx.storage.transactionSync(() => {
      const batch = JSON.parse(body);
      batch.gateway = this.meta("gateway_id");
      batch.dropped.requests += Number(this.meta("dropped_requests") ?? 0);
      batch.dropped.logs += Number(this.meta("dropped_logs") ?? 0);
      batch.dropped.batches += Number(this.meta("dropped_batches") ?? 0);
      // Only when non-zero: a control plane that predates egress metrics refuses the field.
      const egress = (batch.dropped.egress ?? 0) + Number(this.meta("dropped_egress") ?? 0);
      if (egress) batch.dropped.egress = egress;
      this.sql.exec(
        `DELETE FROM meta WHERE key IN ('dropped_requests', 'dropped_logs', 'dropped_batches', 'dropped_egress')`,
      );
      const text = JSON.stringify(batch);
      this.sql.exec(`UPDATE batches SET body = ?, attempts = 1 WHERE seq = ?`, text, seq);
      return text;
    });
  }

  /**
   * @param {string} url
   * @param {string} secret
   * @param {string} body
   * @returns {Promise<"ok" | "retry" | "rejected">}
   */
  async send(url, secret, body) {
    const path = new URL(url).pathname;
    try {
      const headers = await signHeaders(secret, "POST", path, body);
      const fetcher = this.env.INGEST ?? globalThis;
      const response = await fetcher.fetch(url, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body,
      });
      const text = await response.text();
      if (response.status === 200) {
        this.lastError = null;
        this.lastDeliveryAt = Date.now();
        return "ok";
      }
      this.lastError = `HTTP ${response.status}: ${text.slice(0, 200)}`;
      if (response.status >= 500 || response.status === 401 || response.status === 429) return "retry";
      console.error("metrics_batch_rejected", this.lastError);
      return "rejected";
    } catch (error) {
      this.lastError = String(error);
      return "retry";
    }
  }

  /**
   * What `/_plugyard/health` reports about metrics delivery.
   * @returns {Record<string, unknown>}
   */
  status() {
    const pending = this.pendingCount();
    const counter = (/** @type {string} */ key) => Number(this.meta(key) ?? 0);
    // Losses already written into waiting batches are not delivered yet either.
    const held = this.sql
      .exec(
        `SELECT coalesce(sum(json_extract(body, '$.dropped.requests')), 0) AS requests,
                coalesce(sum(json_extract(body, '$.dropped.logs')), 0) AS logs,
                coalesce(sum(json_extract(body, '$.dropped.batches')), 0) AS batches,
                coalesce(sum(json_extract(body, '$.dropped.egress')), 0) AS egress
         FROM batches`,
      )
      .one();
    return {
      gateway_id: this.meta("gateway_id"),
      pending_batches: pending,
      max_pending_batches: maxPending(this.env),
      delivered_batches: counter("delivered_batches"),
      // Lost and not yet reported to the control plane, and the totals already reported.
      dropped: {
        requests: counter("dropped_requests") + Number(held.requests),
        logs: counter("dropped_logs") + Number(held.logs),
        batches: counter("dropped_batches") + Number(held.batches),
        egress: counter("dropped_egress") + Number(held.egress),
      },
      dropped_reported: {
        requests: counter("reported_dropped_requests"),
        logs: counter("reported_dropped_logs"),
        batches: counter("reported_dropped_batches"),
        egress: counter("reported_dropped_egress"),
      },
      last_delivery_at: this.lastDeliveryAt,
      next_attempt_at: this.nextAttemptAt,
      last_error: this.lastError,
    };
  }
}
