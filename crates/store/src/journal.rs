//! Storage of the tamper-evident journal (crate `journal`): the queue that business
//! transactions write into, the sequenced leaves, every complete subtree, and the signed
//! tree heads.
//!
//! Entries reach the log in two steps. A business transaction queues its entry in the same
//! transaction as its change ([`enqueue_journal_entry`]), so an event is journalled if and
//! only if it happened. The sequencer ([`Store::sequence_journal`]) later moves a batch from
//! the queue into the tree in one transaction, under a lock that all nodes share, and signs
//! the new head. Proofs read only complete subtrees, which never change once written: all
//! nodes one proof needs are named in advance and fetched with one indexed query.

use std::collections::HashMap;
use std::fmt::Write as _;

use ::journal::{
    Entry, ExportWriter, Frontier, Hash, Node, NodeId, ProofError, PublicKeyInfo, SignedTreeHead,
    TreeHead,
};
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use crate::{Backend, Result, Store, StoreError, now};

/// PostgreSQL advisory lock of the sequencer (SQLite's write lock serialises it there).
const SEQUENCER_LOCK: i64 = 7_365_612_006;

/// The sequencer connection's SQLite page cache during a batch (see `sequence_journal`).
const SEQUENCER_CACHE_KIB: i64 = 32 * 1024;

/// `journal_subjects` is keyed by `seq >> SUBJECT_BUCKET_BITS` first (see the migration):
/// a batch's inserts land in the current bucket only.
const SUBJECT_BUCKET_BITS: u32 = 16;

/// Rows per multi-row statement: far below SQLite's 32,766 and PostgreSQL's 65,535 bound
/// parameters, large enough that per-statement costs vanish; every full chunk reuses one
/// prepared statement.
const CHUNK_ROWS: usize = 1000;
const EXPORT_PAGE: u64 = 5000;

/// One sequenced entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalLeaf {
    pub seq: u64,
    /// The entry's canonical JSON, exactly the bytes its leaf hash covers.
    pub entry: String,
    pub leaf_hash: Hash,
}

impl JournalLeaf {
    pub fn parse(&self) -> std::result::Result<Entry, ::journal::EntryError> {
        Entry::from_canonical(self.entry.as_bytes())
    }
}

/// An entry with its audit path in the tree of `tree_size` leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    pub seq: u64,
    pub tree_size: u64,
    pub entry: String,
    pub leaf_hash: Hash,
    pub proof: Vec<Hash>,
}

fn to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::NotFound(format!("{what} {v}")))
}

fn to_u64(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v} is negative")))
}

fn hash_of(bytes: &[u8], what: &str) -> Result<Hash> {
    Hash::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A subject's key in `journal_subjects`: the first 8 bytes of its SHA-256. Collisions
/// are possible and harmless: lookups compare the subjects of the entries they find.
fn subject_key(subject: &str) -> i64 {
    let h = ::journal::sha256(subject.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&h.0[..8]);
    i64::from_be_bytes(first)
}

/// The `i`-th (from 0) placeholder of a bulk statement. SQLite gets anonymous `?`:
/// SQLite finds the name of a numbered parameter by a linear search, and sqlx asks for
/// every parameter's name, so thousands of `$n` in one statement cost quadratic time.
fn placeholder(sql: &mut String, backend: Backend, i: usize) {
    match backend {
        Backend::Sqlite => sql.push('?'),
        Backend::Postgres => {
            let _ = write!(sql, "${}", i + 1);
        }
    }
}

/// `prefix VALUES (…), (…), …` with `rows × cols` placeholders.
fn values_sql(backend: Backend, prefix: &str, rows: usize, cols: usize) -> String {
    let mut sql = String::with_capacity(prefix.len() + rows * cols * 7);
    sql.push_str(prefix);
    sql.push_str(" VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push(',');
            }
            placeholder(&mut sql, backend, r * cols + c);
        }
        sql.push(')');
    }
    sql
}

/// `prefix IN (…)` with `n` placeholders.
fn in_list_sql(backend: Backend, prefix: &str, n: usize) -> String {
    let mut sql = String::with_capacity(prefix.len() + n * 7);
    sql.push_str(prefix);
    sql.push_str(" IN (");
    for i in 0..n {
        if i > 0 {
            sql.push(',');
        }
        placeholder(&mut sql, backend, i);
    }
    sql.push(')');
    sql
}

/// Queues an entry inside the caller's transaction: for other store modules whose change
/// must be journalled exactly when it commits.
pub(crate) const SQL_QUEUE_INSERT: &str =
    "INSERT INTO journal_queue (subject_key, entry, created_at) VALUES ($1, $2, $3)";

/// The queue row of an entry: its subject key and canonical text.
pub(crate) fn queue_row(entry: &Entry) -> Result<(i64, String)> {
    Ok((subject_key(&entry.subject), canonical(entry)?))
}

pub(crate) async fn enqueue_journal_entry(conn: &mut AnyConnection, entry: &Entry) -> Result<()> {
    let (key, text) = queue_row(entry)?;
    sqlx::query(SQL_QUEUE_INSERT)
        .bind(key)
        .bind(text)
        .bind(now())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn canonical(entry: &Entry) -> Result<String> {
    entry
        .canonical_json()
        .map_err(|e| StoreError::Conflict(format!("journal entry refused: {e}")))
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Inserts `rows` with one multi-row statement per [`CHUNK_ROWS`] rows.
async fn insert_chunked<T>(
    conn: &mut AnyConnection,
    backend: Backend,
    prefix: &str,
    cols: usize,
    rows: &[T],
    bind: impl for<'q> Fn(AnyQuery<'q>, &'q T) -> AnyQuery<'q>,
) -> Result<()> {
    let full = values_sql(backend, prefix, CHUNK_ROWS, cols);
    for chunk in rows.chunks(CHUNK_ROWS) {
        let partial;
        let sql = if chunk.len() == CHUNK_ROWS {
            &full
        } else {
            partial = values_sql(backend, prefix, chunk.len(), cols);
            &partial
        };
        let mut q = sqlx::query(sql);
        for row in chunk {
            q = bind(q, row);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

async fn enqueue_many(conn: &mut AnyConnection, backend: Backend, entries: &[Entry]) -> Result<()> {
    let created = now();
    let rows = entries
        .iter()
        .map(|e| Ok((subject_key(&e.subject), canonical(e)?, created.as_str())))
        .collect::<Result<Vec<_>>>()?;
    insert_chunked(
        conn,
        backend,
        "INSERT INTO journal_queue (subject_key, entry, created_at)",
        3,
        &rows,
        |q, (key, text, created)| q.bind(*key).bind(text.as_str()).bind(*created),
    )
    .await
}

/// Node and leaf terms of one node query. Always this many (unused ones match nothing):
/// one statement text that each pooled connection prepares once. With a text per proof
/// shape, preparing tens of shapes on every connection made about one proof in twenty
/// ten times slower. 64 nodes cover every proof below 2^32 entries in one query.
const NODE_TERMS: usize = 64;
const LEAF_TERMS: usize = 4;

/// The node query: every wanted node as `level,idx,HEX` joined by `;` in one row, and with
/// `entry` the text of one leaf. One row, because sqlx hands each SQLite row from its worker
/// thread to the caller separately, and thirty hand-offs cost more than the query itself.
fn node_query_sql(backend: Backend, entry: bool) -> String {
    let aggregate = match backend {
        Backend::Sqlite => "group_concat(level || ',' || idx || ',' || hex(hash), ';')",
        Backend::Postgres => "string_agg(level || ',' || idx || ',' || encode(hash, 'hex'), ';')",
    };
    let mut sql = format!("SELECT {aggregate} AS nodes, ");
    let mut n = 0;
    if entry {
        sql.push_str("(SELECT entry FROM journal_leaves WHERE seq = ");
        placeholder(&mut sql, backend, n);
        sql.push_str(") AS entry");
        n += 1;
    } else {
        sql.push_str("CAST(NULL AS TEXT) AS entry");
    }
    sql.push_str(" FROM (SELECT level, idx, hash FROM journal_nodes WHERE ");
    for i in 0..NODE_TERMS {
        if i > 0 {
            sql.push_str(" OR ");
        }
        sql.push_str("(level = ");
        placeholder(&mut sql, backend, n);
        sql.push_str(" AND idx = ");
        placeholder(&mut sql, backend, n + 1);
        sql.push(')');
        n += 2;
    }
    sql.push_str(
        " UNION ALL SELECT CAST(0 AS BIGINT) AS level, seq AS idx, leaf_hash AS hash \
         FROM journal_leaves WHERE seq IN (",
    );
    for i in 0..LEAF_TERMS {
        if i > 0 {
            sql.push(',');
        }
        placeholder(&mut sql, backend, n + i);
    }
    sql.push_str(")) AS wanted");
    sql
}

fn parse_node(item: &str) -> Option<(NodeId, Hash)> {
    let mut parts = item.split(',');
    let level = parts.next()?.parse().ok()?;
    let index = parts.next()?.parse().ok()?;
    let hash = Hash::from_hex(parts.next()?).ok()?;
    parts
        .next()
        .is_none()
        .then_some((NodeId { level, index }, hash))
}

/// Fetches stored nodes — levels ≥ 1 from `journal_nodes`, level 0 from the leaves — with
/// one statement (more only beyond [`NODE_TERMS`]). With `entry_of`, that leaf is fetched
/// too, with its entry text.
async fn fetch_nodes(
    conn: &mut AnyConnection,
    backend: Backend,
    ids: &[NodeId],
    entry_of: Option<u64>,
) -> Result<(HashMap<NodeId, Hash>, Option<String>)> {
    let upper = ids
        .iter()
        .filter(|id| id.level > 0)
        .map(|id| Ok((i64::from(id.level), to_i64(id.index, "journal node")?)))
        .collect::<Result<Vec<_>>>()?;
    let mut leaves = ids
        .iter()
        .filter(|id| id.level == 0)
        .map(|id| id.index)
        .chain(entry_of)
        .map(|seq| to_i64(seq, "journal entry"))
        .collect::<Result<Vec<_>>>()?;
    leaves.sort_unstable();
    leaves.dedup();
    let mut nodes = HashMap::with_capacity(ids.len() + 1);
    let mut entry = None;
    let rounds = upper
        .len()
        .div_ceil(NODE_TERMS)
        .max(leaves.len().div_ceil(LEAF_TERMS));
    for round in 0..rounds {
        let with_entry = round == 0 && entry_of.is_some();
        let sql = node_query_sql(backend, with_entry);
        let mut q = sqlx::query(&sql);
        if with_entry {
            q = q.bind(to_i64(entry_of.unwrap_or_default(), "journal entry")?);
        }
        for i in 0..NODE_TERMS {
            let (level, idx) = upper
                .get(round * NODE_TERMS + i)
                .copied()
                .unwrap_or((-1, -1));
            q = q.bind(level).bind(idx);
        }
        for i in 0..LEAF_TERMS {
            q = q.bind(leaves.get(round * LEAF_TERMS + i).copied().unwrap_or(-1));
        }
        let row = q.fetch_one(&mut *conn).await?;
        let list: Option<String> = row.try_get(0)?;
        for item in list.iter().flat_map(|l| l.split(';')) {
            let (id, hash) = parse_node(item)
                .ok_or_else(|| StoreError::Corrupt(format!("journal node {item:?}")))?;
            nodes.insert(id, hash);
        }
        if with_entry {
            entry = row.try_get(1)?;
        }
    }
    Ok((nodes, entry))
}

/// The latest head's size and root inside the sequencer's transaction.
async fn stored_state(conn: &mut AnyConnection) -> Result<(u64, Hash, i64)> {
    let row = sqlx::query(
        "SELECT tree_size, root, timestamp_ms FROM journal_tree_heads \
         ORDER BY tree_size DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        None => Ok((0, ::journal::empty_root(), i64::MIN)),
        Some(r) => Ok((
            to_u64(r.try_get(0)?, "journal tree size")?,
            hash_of(&r.try_get::<Vec<u8>, _>(1)?, "journal root")?,
            r.try_get(2)?,
        )),
    }
}

async fn load_frontier(
    conn: &mut AnyConnection,
    backend: Backend,
    size: u64,
    root: &Hash,
) -> Result<Frontier> {
    let ids = Frontier::node_ids(size);
    let (nodes, _) = fetch_nodes(conn, backend, &ids, None).await?;
    let frontier = Frontier::from_nodes(size, |id| nodes.get(&id).copied())
        .map_err(|e| StoreError::Corrupt(format!("journal right edge at size {size}: {e}")))?;
    if frontier.root() != *root {
        return Err(StoreError::Corrupt(format!(
            "journal nodes give another root than the signed head of size {size}"
        )));
    }
    Ok(frontier)
}

/// The SQL of the synchronous sequencer (SQLite files). The same tables and statements as
/// [`Store::sequence_on`], one row per statement: a prepared single-row insert is the
/// fastest form on a rusqlite connection, where binding thousands of `$n` parameters of
/// a multi-row statement by name would cost more than it saves.
const SQL_STATE: &str = "SELECT tree_size, root, timestamp_ms FROM journal_tree_heads \
     ORDER BY tree_size DESC LIMIT 1";
const SQL_NODE: &str = "SELECT hash FROM journal_nodes WHERE level = $1 AND idx = $2";
const SQL_LEAF_HASH: &str = "SELECT leaf_hash FROM journal_leaves WHERE seq = $1";
const SQL_QUEUED: &str = "SELECT id, subject_key, entry FROM journal_queue ORDER BY id LIMIT $1";
const SQL_LEAF_INSERT: &str =
    "INSERT INTO journal_leaves (seq, entry, leaf_hash) VALUES ($1, $2, $3)";
const SQL_SUBJECT_INSERT: &str =
    "INSERT INTO journal_subjects (bucket, subject_key, seq) VALUES ($1, $2, $3)";
const SQL_NODE_INSERT: &str = "INSERT INTO journal_nodes (level, idx, hash) VALUES ($1, $2, $3)";
const SQL_HEAD_INSERT: &str = "INSERT INTO journal_tree_heads (tree_size, root, timestamp_ms, signature, key_id) \
     VALUES ($1, $2, $3, $4, $5)";
/// By range: the writer holds SQLite's write lock from the read to the commit, so the batch
/// is exactly the queue's first rows (PostgreSQL, where that does not hold, deletes by id).
const SQL_QUEUE_DELETE_UPTO: &str = "DELETE FROM journal_queue WHERE id <= $1";

/// The head of `tree` at `now` (never earlier than the previous head's `last_timestamp`),
/// signed by `sign` and checked to be that head.
fn sign_head(
    tree: &Frontier,
    now: OffsetDateTime,
    last_timestamp: i64,
    sign: impl FnOnce(&TreeHead) -> SignedTreeHead,
) -> Result<SignedTreeHead> {
    let now_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    let head = TreeHead {
        size: tree.size(),
        root: tree.root(),
        timestamp_ms: now_ms.max(last_timestamp),
    };
    let signed = sign(&head);
    if signed.head() != head {
        return Err(StoreError::Conflict(
            "the journal signer returned a head for another tree".into(),
        ));
    }
    Ok(signed)
}

fn sync_err(e: rusqlite::Error) -> StoreError {
    crate::sync_writer::store_error(e, || "journal sequencer: a row exists already".into())
}

/// [`Store::sequence_on`] on the synchronous writer's connection, inside its group
/// transaction. Returns the signed head (`None`: nothing queued) and the right edge.
fn sequence_sync(
    c: &rusqlite::Connection,
    max_batch: usize,
    cached: Option<Frontier>,
    now: OffsetDateTime,
    sign: impl FnOnce(&TreeHead) -> SignedTreeHead,
) -> Result<(Option<SignedTreeHead>, Option<Frontier>)> {
    use crate::sync_writer::{exec, query_all, query_opt};
    let state = query_opt(c, SQL_STATE, &[], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })
    .map_err(sync_err)?;
    let (size, root, last_timestamp) = match state {
        None => (0, ::journal::empty_root(), i64::MIN),
        Some((size, root, ts)) => (
            to_u64(size, "journal tree size")?,
            hash_of(&root, "journal root")?,
            ts,
        ),
    };
    let mut tree = match cached {
        Some(f) if f.size() == size && f.root() == root => f,
        _ => {
            let mut nodes = HashMap::new();
            for id in Frontier::node_ids(size) {
                let index = to_i64(id.index, "journal node")?;
                let hash = if id.level == 0 {
                    query_opt(c, SQL_LEAF_HASH, &[&index], |r| r.get::<_, Vec<u8>>(0))
                } else {
                    query_opt(c, SQL_NODE, &[&i64::from(id.level), &index], |r| {
                        r.get::<_, Vec<u8>>(0)
                    })
                }
                .map_err(sync_err)?;
                if let Some(h) = hash {
                    nodes.insert(id, hash_of(&h, "journal node")?);
                }
            }
            let f = Frontier::from_nodes(size, |id| nodes.get(&id).copied()).map_err(|e| {
                StoreError::Corrupt(format!("journal right edge at size {size}: {e}"))
            })?;
            if f.root() != root {
                return Err(StoreError::Corrupt(format!(
                    "journal nodes give another root than the signed head of size {size}"
                )));
            }
            f
        }
    };
    let limit = i64::try_from(max_batch).unwrap_or(i64::MAX);
    let rows = query_all(c, SQL_QUEUED, &[&limit], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
        ))
    })
    .map_err(sync_err)?;
    let Some(&(last_id, _, _)) = rows.last() else {
        return Ok((None, Some(tree)));
    };
    let mut nodes: Vec<Node> = Vec::with_capacity(32);
    for (_, key, entry) in &rows {
        let leaf = ::journal::leaf_hash(entry.as_bytes());
        let seq = tree.size();
        let seq_sql = to_i64(seq, "journal seq")?;
        exec(c, SQL_LEAF_INSERT, &[&seq_sql, entry, &&leaf.0[..]]).map_err(sync_err)?;
        let bucket = to_i64(seq >> SUBJECT_BUCKET_BITS, "bucket")?;
        exec(c, SQL_SUBJECT_INSERT, &[&bucket, key, &seq_sql]).map_err(sync_err)?;
        tree.append_with(leaf, |n| {
            if n.id.level > 0 {
                nodes.push(n);
            }
        });
        for n in nodes.drain(..) {
            let idx = to_i64(n.id.index, "journal node")?;
            exec(
                c,
                SQL_NODE_INSERT,
                &[&i64::from(n.id.level), &idx, &&n.hash.0[..]],
            )
            .map_err(sync_err)?;
        }
    }
    exec(c, SQL_QUEUE_DELETE_UPTO, &[&last_id]).map_err(sync_err)?;
    let signed = sign_head(&tree, now, last_timestamp, sign)?;
    let tree_size = to_i64(signed.tree_size, "journal tree size")?;
    exec(
        c,
        SQL_HEAD_INSERT,
        &[
            &tree_size,
            &&signed.root_hash.0[..],
            &signed.timestamp,
            &signed.signature,
            &signed.key_id,
        ],
    )
    .map_err(sync_err)?;
    Ok((Some(signed), Some(tree)))
}

fn head_from_row(r: &sqlx::any::AnyRow) -> Result<SignedTreeHead> {
    Ok(SignedTreeHead {
        tree_size: to_u64(r.try_get("tree_size")?, "journal tree size")?,
        root_hash: hash_of(&r.try_get::<Vec<u8>, _>("root")?, "journal root")?,
        timestamp: r.try_get("timestamp_ms")?,
        signature: r.try_get("signature")?,
        key_id: r.try_get("key_id")?,
    })
}

fn leaf_from_row(r: &sqlx::any::AnyRow) -> Result<JournalLeaf> {
    Ok(JournalLeaf {
        seq: to_u64(r.try_get("seq")?, "journal seq")?,
        entry: r.try_get("entry")?,
        leaf_hash: hash_of(&r.try_get::<Vec<u8>, _>("leaf_hash")?, "journal leaf hash")?,
    })
}

impl Store {
    /// Queues one entry on its own (when there is no business transaction to join).
    pub async fn enqueue_journal(&self, entry: &Entry) -> Result<()> {
        let mut tx = self.begin_write().await?;
        enqueue_journal_entry(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Queues several entries in one transaction.
    pub async fn enqueue_journal_batch(&self, entries: &[Entry]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        enqueue_many(&mut tx, self.backend, entries).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Entries waiting for the sequencer.
    pub async fn journal_queue_len(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM journal_queue")
            .fetch_one(&self.pool)
            .await?;
        to_u64(n, "journal queue length")
    }

    /// Moves up to `max_batch` queued entries (oldest first) into the tree and stores the
    /// head for the new size, signed by `sign` — all in one transaction, serialised across
    /// nodes. `frontier` is the caller's cache of the right edge: used if it matches the
    /// stored head, otherwise rebuilt from the stored nodes; updated on success. `None` if
    /// nothing was queued. The head's timestamp is `now`, but never earlier than the
    /// previous head's.
    pub async fn sequence_journal(
        &self,
        max_batch: usize,
        frontier: &mut Option<Frontier>,
        now: OffsetDateTime,
        sign: impl FnOnce(&TreeHead) -> SignedTreeHead + Send + 'static,
    ) -> Result<Option<SignedTreeHead>> {
        // Without the write lock: an idle sequencer polling an empty queue blocks nobody.
        let waiting: Option<i64> = sqlx::query_scalar("SELECT id FROM journal_queue LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        if waiting.is_none() || max_batch == 0 {
            return Ok(None);
        }
        if self.has_sync_writer() {
            // SQLite files: on the synchronous writer's connection (`sync_writer.rs`),
            // where each of a batch's ~12,000 statements costs microseconds instead of a
            // hand-off to sqlx's worker thread. The batch joins the writer's group
            // transaction like any other job (it holds the write lock either way).
            let cached = frontier.take();
            let (head, tree) = self
                .write_sync(move |c| sequence_sync(c, max_batch, cached, now, sign))
                .await?;
            *frontier = tree;
            return Ok(head);
        }
        let mut conn = self.pool.acquire().await?;
        // A batch dirties a few MB of pages; in the pool's small page cache SQLite would
        // spill them mid-transaction and read them back (about 15 % of the sequencer's
        // CPU). The connection gets a larger cache for the batch only.
        let restore: Option<i64> = if self.backend == Backend::Sqlite {
            let previous = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(&mut *conn)
                .await?;
            sqlx::query(&format!("PRAGMA cache_size = -{SEQUENCER_CACHE_KIB}"))
                .execute(&mut *conn)
                .await?;
            Some(previous)
        } else {
            None
        };
        let result = self
            .sequence_on(&mut conn, max_batch, frontier, now, sign)
            .await;
        if let Some(previous) = restore {
            let reset = sqlx::query(&format!("PRAGMA cache_size = {previous}"))
                .execute(&mut *conn)
                .await;
            if reset.is_err() {
                conn.close_on_drop();
            }
        }
        result
    }

    async fn sequence_on(
        &self,
        conn: &mut AnyConnection,
        max_batch: usize,
        frontier: &mut Option<Frontier>,
        now: OffsetDateTime,
        sign: impl FnOnce(&TreeHead) -> SignedTreeHead + Send + 'static,
    ) -> Result<Option<SignedTreeHead>> {
        use sqlx::Connection as _;
        let mut tx = match self.backend {
            Backend::Sqlite => conn.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => conn.begin().await?,
        };
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(SEQUENCER_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let (size, root, last_timestamp) = stored_state(&mut tx).await?;
        let mut tree = match frontier.take() {
            Some(f) if f.size() == size && f.root() == root => f,
            _ => load_frontier(&mut tx, self.backend, size, &root).await?,
        };

        let rows =
            sqlx::query("SELECT id, subject_key, entry FROM journal_queue ORDER BY id LIMIT $1")
                .bind(i64::try_from(max_batch).unwrap_or(i64::MAX))
                .fetch_all(&mut *tx)
                .await?;
        if rows.is_empty() {
            *frontier = Some(tree);
            return Ok(None);
        }
        let mut queue_ids = Vec::with_capacity(rows.len());
        let mut leaves = Vec::with_capacity(rows.len());
        let mut subjects = Vec::with_capacity(rows.len());
        let mut nodes: Vec<Node> = Vec::with_capacity(rows.len() + 32);
        for r in &rows {
            queue_ids.push(r.try_get::<i64, _>(0)?);
            let key: i64 = r.try_get(1)?;
            let entry: String = r.try_get(2)?;
            let leaf = ::journal::leaf_hash(entry.as_bytes());
            let seq = tree.size();
            tree.append_with(leaf, |n| {
                if n.id.level > 0 {
                    nodes.push(n);
                }
            });
            let seq_sql = to_i64(seq, "journal seq")?;
            subjects.push((to_i64(seq >> SUBJECT_BUCKET_BITS, "bucket")?, key, seq_sql));
            leaves.push((seq_sql, entry, leaf));
        }
        let nodes = nodes
            .iter()
            .map(|n| {
                Ok((
                    i64::from(n.id.level),
                    to_i64(n.id.index, "journal node")?,
                    n.hash,
                ))
            })
            .collect::<Result<Vec<_>>>()?;

        insert_chunked(
            &mut tx,
            self.backend,
            "INSERT INTO journal_leaves (seq, entry, leaf_hash)",
            3,
            &leaves,
            |q, (seq, entry, leaf)| q.bind(*seq).bind(entry.as_str()).bind(&leaf.0[..]),
        )
        .await?;
        insert_chunked(
            &mut tx,
            self.backend,
            "INSERT INTO journal_subjects (bucket, subject_key, seq)",
            3,
            &subjects,
            |q, (bucket, key, seq)| q.bind(*bucket).bind(*key).bind(*seq),
        )
        .await?;
        insert_chunked(
            &mut tx,
            self.backend,
            "INSERT INTO journal_nodes (level, idx, hash)",
            3,
            &nodes,
            |q, (level, idx, hash)| q.bind(*level).bind(*idx).bind(&hash.0[..]),
        )
        .await?;
        // By id, not by range: on PostgreSQL an entry with a smaller id may commit after
        // this batch was read, and must stay queued.
        for chunk in queue_ids.chunks(CHUNK_ROWS) {
            let sql = in_list_sql(
                self.backend,
                "DELETE FROM journal_queue WHERE id",
                chunk.len(),
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }

        let signed = sign_head(&tree, now, last_timestamp, sign)?;
        sqlx::query(
            "INSERT INTO journal_tree_heads (tree_size, root, timestamp_ms, signature, key_id) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(to_i64(signed.tree_size, "journal tree size")?)
        .bind(signed.root_hash.0.to_vec())
        .bind(signed.timestamp)
        .bind(signed.signature.clone())
        .bind(signed.key_id.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        *frontier = Some(tree);
        Ok(Some(signed))
    }

    pub async fn latest_tree_head(&self) -> Result<Option<SignedTreeHead>> {
        let row = sqlx::query(
            "SELECT tree_size, root, timestamp_ms, signature, key_id FROM journal_tree_heads \
             ORDER BY tree_size DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(head_from_row).transpose()
    }

    /// The signed head stored for exactly `size` (heads exist for every size a batch ended at).
    pub async fn tree_head(&self, size: u64) -> Result<Option<SignedTreeHead>> {
        let row = sqlx::query(
            "SELECT tree_size, root, timestamp_ms, signature, key_id FROM journal_tree_heads \
             WHERE tree_size = $1",
        )
        .bind(to_i64(size, "journal tree size")?)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(head_from_row).transpose()
    }

    pub async fn journal_entry(&self, seq: u64) -> Result<Option<JournalLeaf>> {
        let row = sqlx::query("SELECT seq, entry, leaf_hash FROM journal_leaves WHERE seq = $1")
            .bind(to_i64(seq, "journal entry")?)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(leaf_from_row).transpose()
    }

    /// Every sequenced entry about `subject` (e.g. `submission:<uuid>`), in log order: one
    /// index seek per bucket of 65,536 entries.
    pub async fn journal_entries_for_subject(&self, subject: &str) -> Result<Vec<JournalLeaf>> {
        let rows = sqlx::query(
            "WITH RECURSIVE buckets (b) AS ( \
                 SELECT CAST(0 AS BIGINT) \
                 UNION ALL SELECT b + 1 FROM buckets \
                 WHERE b < (SELECT MAX(bucket) FROM journal_subjects)) \
             SELECT l.seq, l.entry, l.leaf_hash FROM buckets \
             JOIN journal_subjects s ON s.bucket = buckets.b AND s.subject_key = $1 \
             JOIN journal_leaves l ON l.seq = s.seq \
             ORDER BY l.seq",
        )
        .bind(subject_key(subject))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let leaf = leaf_from_row(r)?;
            // The key is a hash prefix: keep only the entries really about this subject.
            let entry = leaf
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("journal entry {}: {e}", leaf.seq)))?;
            if entry.subject == subject {
                out.push(leaf);
            }
        }
        Ok(out)
    }

    /// The entries about `subject` still waiting for the sequencer, oldest first.
    pub async fn journal_queued_for_subject(&self, subject: &str) -> Result<Vec<String>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT entry FROM journal_queue WHERE subject_key = $1 ORDER BY id",
        )
        .bind(subject_key(subject))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for text in rows {
            let entry = Entry::from_canonical(text.as_bytes())
                .map_err(|e| StoreError::Corrupt(format!("queued journal entry: {e}")))?;
            if entry.subject == subject {
                out.push(text);
            }
        }
        Ok(out)
    }

    /// Up to `limit` entries from `from_seq` on, in log order.
    pub async fn journal_entries(&self, from_seq: u64, limit: u32) -> Result<Vec<JournalLeaf>> {
        let rows = sqlx::query(
            "SELECT seq, entry, leaf_hash FROM journal_leaves WHERE seq >= $1 ORDER BY seq LIMIT $2",
        )
        .bind(to_i64(from_seq, "journal entry")?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(leaf_from_row).collect()
    }

    /// The entry `seq` with its audit path in the tree of `tree_size` leaves: one query.
    pub async fn journal_inclusion_proof(
        &self,
        seq: u64,
        tree_size: u64,
    ) -> Result<InclusionProof> {
        let ids = ::journal::inclusion_proof_nodes(seq, tree_size)
            .map_err(|e| StoreError::NotFound(e.to_string()))?;
        let mut conn = self.pool.acquire().await?;
        let (nodes, entry) = fetch_nodes(&mut conn, self.backend, &ids, Some(seq)).await?;
        drop(conn);
        let (Some(entry), Some(&leaf_hash)) = (entry, nodes.get(&NodeId::leaf(seq))) else {
            return Err(StoreError::NotFound(format!("journal entry {seq}")));
        };
        let proof = match ::journal::inclusion_proof(seq, tree_size, &nodes) {
            Ok(p) => p,
            Err(e) => return Err(self.missing(tree_size, e).await),
        };
        Ok(InclusionProof {
            seq,
            tree_size,
            entry,
            leaf_hash,
            proof,
        })
    }

    /// The RFC 9162 consistency proof from the tree of `m` leaves to that of `n`: one query.
    pub async fn journal_consistency_proof(&self, m: u64, n: u64) -> Result<Vec<Hash>> {
        let ids = ::journal::consistency_proof_nodes(m, n)
            .map_err(|e| StoreError::NotFound(e.to_string()))?;
        let mut conn = self.pool.acquire().await?;
        let (nodes, _) = fetch_nodes(&mut conn, self.backend, &ids, None).await?;
        drop(conn);
        match ::journal::consistency_proof(m, n, &nodes) {
            Ok(p) => Ok(p),
            Err(e) => Err(self.missing(n, e).await),
        }
    }

    /// A node a proof needed is missing: a size beyond the log (not found), or a gap below
    /// the log's size (corruption).
    async fn missing(&self, size: u64, e: ProofError) -> StoreError {
        match self.latest_tree_head().await {
            Ok(Some(h)) if size <= h.tree_size => {
                StoreError::Corrupt(format!("journal tree of size {size}: {e}"))
            }
            Ok(_) => StoreError::NotFound(format!("journal tree of size {size}")),
            Err(err) => err,
        }
    }

    /// Writes the whole log, up to the latest signed head, in the export format of crate
    /// `journal` (verify with `journal::verify_export`). `public_keys` must contain the key
    /// that signed the head. Reads in pages; `out` is written synchronously, so hand in a
    /// buffered file, not a socket. `None` (and nothing written) if the log is empty.
    pub async fn journal_export<W: std::io::Write>(
        &self,
        out: W,
        public_keys: &[PublicKeyInfo],
    ) -> Result<Option<(SignedTreeHead, W)>> {
        let Some(head) = self.latest_tree_head().await? else {
            return Ok(None);
        };
        let export_error = |e: ::journal::ExportError| StoreError::Conflict(e.to_string());
        let mut writer = ExportWriter::new(out, public_keys, &head).map_err(export_error)?;
        let mut next = 0u64;
        while next < head.tree_size {
            let end = head.tree_size.min(next + EXPORT_PAGE);
            let rows = sqlx::query(
                "SELECT seq, entry FROM journal_leaves WHERE seq >= $1 AND seq < $2 ORDER BY seq",
            )
            .bind(to_i64(next, "journal entry")?)
            .bind(to_i64(end, "journal entry")?)
            .fetch_all(&self.pool)
            .await?;
            for r in &rows {
                let seq = to_u64(r.try_get(0)?, "journal seq")?;
                if seq != next {
                    return Err(StoreError::Corrupt(format!(
                        "journal entry {next} is missing"
                    )));
                }
                let entry: String = r.try_get(1)?;
                writer.entry(entry.as_bytes()).map_err(export_error)?;
                next += 1;
            }
            if rows.is_empty() {
                return Err(StoreError::Corrupt(format!(
                    "journal entry {next} is missing"
                )));
            }
        }
        let out = writer.finish().map_err(export_error)?;
        Ok(Some((head, out)))
    }
}
