//! The fleet's keys in Redis and the only commands sent to it. Every key
//! of fleet `NAME` is under the hash tag `rampart:{NAME}:` (one Redis
//! Cluster slot, so the scripts, which touch several keys, stay legal there):
//!
//! | key | type | what |
//! |---|---|---|
//! | `log` | stream | every change, field `e` = one encoded [`Change`]; trimmed `MAXLEN ~ log_max` |
//! | `snap` | hash | the entries in force, `LIST|CIDR` → encoded add |
//! | `hosts` | hash | host id → its last heartbeat (JSON) |
//! | `epoch` | string | a random id made when the keys are (re)created: a new one means Redis lost them |
//!
//! Reads go through two small Lua scripts that blank any value over
//! [`MAX_ENTRY`] and return at most `COUNT` items, so what the client
//! receives is bounded whatever another writer put in Redis.

use std::time::Duration;

use redis::{AsyncCommands, aio::ConnectionManager};

use super::{
    FleetError,
    entry::{Change, MAX_ENTRY, Op},
};
use crate::config::FleetSettings;

/// Items per read (log entries or snapshot fields).
pub const BATCH: usize = 512;
/// Most hosts `fleet status` lists.
pub const MAX_HOSTS: usize = 256;

/// `KEYS[1]` log, `ARGV` cursor (exclusive), count, max bytes →
/// `{max-deleted-entry-id, first id, last-generated-id, entries removed
/// (added - length), {{id, value-or-''}...}}` (`0-0` for what there is
/// not). Needs Redis 7.0 (`entries-added`, `max-deleted-entry-id`).
const READ_LOG: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'0-0', '0-0', '0-0', '0', {}} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local deleted, first, last, added, length = '0-0', '0-0', '0-0', 0, 0
for i = 1, #info, 2 do
  if info[i] == 'max-deleted-entry-id' then deleted = info[i + 1] end
  if info[i] == 'last-generated-id' then last = info[i + 1] end
  if info[i] == 'first-entry' and type(info[i + 1]) == 'table' then first = info[i + 1][1] end
  if info[i] == 'entries-added' then added = info[i + 1] end
  if info[i] == 'length' then length = info[i + 1] end
end
local out = {}
local n = tonumber(ARGV[2])
if n > 0 then
  local max = tonumber(ARGV[3])
  local r = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', n)
  for i, e in ipairs(r) do
    local f = e[2]
    local v = f[2]
    if #f ~= 2 or f[1] ~= 'e' or type(v) ~= 'string' then v = '!' elseif #v > max then v = '' end
    out[i] = {e[1], v}
  end
end
return {deleted, first, last, tostring(added - length), out}
";

/// `KEYS[1]` snapshot, `KEYS[2]` log, `ARGV[1]` the log's length, then
/// per change `op, field, value`: each change's snapshot field and its log
/// entry, all in one atomic script (not MULTI/EXEC: redis-rs 1.8 panics on
/// a refused MULTI, as an ACL without `@transaction` refuses it).
const PUBLISH: &str = r"
for i = 2, #ARGV, 3 do
  if ARGV[i] == 'add' then
    redis.call('HSET', KEYS[1], ARGV[i + 1], ARGV[i + 2])
  else
    redis.call('HDEL', KEYS[1], ARGV[i + 1])
  end
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[i + 2])
end
return #ARGV
";

/// `KEYS[1]` snapshot, `ARGV` field, value pairs: each field removed if it
/// still holds that value.
const EXPIRE: &str = r"
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    n = n + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return n
";

/// `KEYS[1]` hash, `ARGV` scan cursor, count, max bytes →
/// `{next-cursor, {field, value-or-''...}}`.
const SCAN_HASH: &str = r"
local r = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', tonumber(ARGV[2]))
local max = tonumber(ARGV[3])
local out = {}
for i = 1, #r[2], 2 do
  local k, v = r[2][i], r[2][i + 1]
  if #k > 128 then k = '' end
  if #v > max then v = '' end
  out[#out + 1] = k
  out[#out + 1] = v
end
return {r[1], out}
";

/// A stream id, ordered as Redis orders them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub fn parse(s: &str) -> Option<StreamId> {
        let (ms, seq) = s.split_once('-')?;
        Some(StreamId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// What the log script answers: deleted, first, last, removed, entries.
type RawLog = (String, String, String, String, Vec<(String, Vec<u8>)>);

/// One read of the log.
pub struct LogRead {
    /// The newest id deleted (by `XDEL`; trimming may not move it).
    pub deleted: StreamId,
    /// The oldest id still in the log (`0-0`: empty).
    pub first: StreamId,
    /// Entries trimmed or deleted since the log was created.
    pub removed: u64,
    /// The newest id ever added.
    pub last: StreamId,
    /// `(id, value)`: an empty value was blanked by the script.
    pub entries: Vec<(StreamId, Vec<u8>)>,
}

impl LogRead {
    /// Whether entries after `cursor` may have been trimmed or deleted, so
    /// reading on from it would miss some: then the snapshot is read.
    /// Conservative once trimming has begun: the oldest entry left being
    /// newer than the cursor counts.
    pub fn gap_after(&self, cursor: StreamId) -> bool {
        let kept_from_cursor = self.first != StreamId::default() && self.first <= cursor;
        self.deleted > cursor || (self.last > cursor && self.removed > 0 && !kept_from_cursor)
    }
}

pub struct Store {
    con: ConnectionManager,
    log: String,
    snap: String,
    hosts: String,
    epoch: String,
    log_max: u64,
    read_log: redis::Script,
    scan_hash: redis::Script,
    publish: redis::Script,
    expire: redis::Script,
}

impl Store {
    /// A lazily connecting store: nothing is sent until the first command,
    /// and a lost connection is made again (with backoff) on the next one.
    pub fn new(s: &FleetSettings) -> Result<Store, FleetError> {
        let con = connect(s)?;
        let prefix = format!("rampart:{{{}}}", s.name);
        Ok(Store {
            con,
            log: format!("{prefix}:log"),
            snap: format!("{prefix}:snap"),
            hosts: format!("{prefix}:hosts"),
            epoch: format!("{prefix}:epoch"),
            log_max: s.log_max,
            read_log: redis::Script::new(READ_LOG),
            scan_hash: redis::Script::new(SCAN_HASH),
            publish: redis::Script::new(PUBLISH),
            expire: redis::Script::new(EXPIRE),
        })
    }

    /// The keys' epoch, made now if there is none (the first host, or
    /// Redis came back empty).
    pub async fn epoch(&mut self, fresh: &str) -> Result<String, FleetError> {
        let _: Option<String> = redis::cmd("SET")
            .arg(&self.epoch)
            .arg(fresh)
            .arg("NX")
            .query_async(&mut self.con)
            .await?;
        let e: Option<String> = self.con.get(&self.epoch).await?;
        e.filter(|e| e.len() <= 64)
            .ok_or(FleetError::Protocol("the epoch key is missing or too long"))
    }

    /// Publishes `changes` in order: each one's snapshot field and its log
    /// entry, atomically, in one round trip.
    pub async fn publish(&mut self, changes: &[Change]) -> Result<(), FleetError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut call = self.publish.key(&self.snap);
        call.key(&self.log).arg(self.log_max);
        for c in changes {
            let op = match c.op {
                Op::Add => "add",
                Op::Del => "del",
            };
            call.arg(op).arg(c.key()).arg(c.encode());
        }
        let _: i64 = call.invoke_async(&mut self.con).await?;
        Ok(())
    }

    /// Up to `count` log entries after `after` (0: only the ids).
    pub async fn read_log(&mut self, after: StreamId, count: usize) -> Result<LogRead, FleetError> {
        let (deleted, first, last, removed, raw): RawLog = self
            .read_log
            .key(&self.log)
            .arg(after.to_string())
            .arg(count.min(BATCH))
            .arg(MAX_ENTRY)
            .invoke_async(&mut self.con)
            .await?;
        let id = |s: &str| StreamId::parse(s).ok_or(FleetError::Protocol("a stream id"));
        let mut entries = Vec::with_capacity(raw.len().min(BATCH));
        for (i, v) in raw.into_iter().take(BATCH) {
            entries.push((id(&i)?, v));
        }
        Ok(LogRead {
            deleted: id(&deleted)?,
            first: id(&first)?,
            removed: removed
                .parse()
                .map_err(|_| FleetError::Protocol("a count of removed entries"))?,
            last: id(&last)?,
            entries,
        })
    }

    /// One step of a scan of the snapshot: `(next cursor, [(field, value)])`;
    /// the scan is over when the cursor is 0.
    pub async fn scan_snapshot(
        &mut self,
        cursor: u64,
    ) -> Result<(u64, Vec<(Vec<u8>, Vec<u8>)>), FleetError> {
        let snap = self.snap.clone();
        self.scan(&snap, cursor).await
    }

    async fn scan(
        &mut self,
        key: &str,
        cursor: u64,
    ) -> Result<(u64, Vec<(Vec<u8>, Vec<u8>)>), FleetError> {
        let (next, flat): (String, Vec<Vec<u8>>) = self
            .scan_hash
            .key(key)
            .arg(cursor)
            .arg(BATCH)
            .arg(MAX_ENTRY)
            .invoke_async(&mut self.con)
            .await?;
        let next = next
            .parse()
            .map_err(|_| FleetError::Protocol("an HSCAN cursor"))?;
        let mut pairs = Vec::with_capacity(flat.len() / 2);
        let mut it = flat.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        Ok((next, pairs))
    }

    /// Removes expired entries from the snapshot: each field only if it
    /// still holds the value that expired (a host may have written it again
    /// since). No log entry: every host lifts an expired entry by itself.
    pub async fn expire(&mut self, fields: &[(Vec<u8>, Vec<u8>)]) -> Result<(), FleetError> {
        for chunk in fields.chunks(BATCH) {
            let mut call = self.expire.key(&self.snap);
            for (k, v) in chunk {
                call.arg(k.as_slice()).arg(v.as_slice());
            }
            let _: i64 = call.invoke_async(&mut self.con).await?;
        }
        Ok(())
    }

    /// This host's heartbeat.
    pub async fn beat(&mut self, host: &str, record: &str) -> Result<(), FleetError> {
        let _: () = self.con.hset(&self.hosts, host, record).await?;
        Ok(())
    }

    /// Every host's last heartbeat (at most [`MAX_HOSTS`], values bounded).
    pub async fn hosts(&mut self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, FleetError> {
        let hosts = self.hosts.clone();
        let mut out = Vec::new();
        let mut cursor = 0;
        loop {
            let (next, pairs) = self.scan(&hosts, cursor).await?;
            out.extend(pairs);
            if next == 0 || out.len() >= MAX_HOSTS {
                break;
            }
            cursor = next;
        }
        out.truncate(MAX_HOSTS);
        Ok(out)
    }
}

/// A lazily connecting connection to the fleet's Redis (made again, with
/// backoff, on the command after a lost one).
pub(super) fn connect(s: &FleetSettings) -> Result<ConnectionManager, FleetError> {
    let mut redis_info = redis::RedisConnectionInfo::default();
    if let Some(u) = &s.user {
        redis_info = redis_info.set_username(u);
    }
    if let Some(p) = &s.password {
        redis_info = redis_info.set_password(p.expose());
    }
    let addr = match &s.tls {
        None => redis::ConnectionAddr::Tcp(s.host.clone(), s.port),
        // The certificate is checked against `host` (a DNS name or an IP
        // address in its subjectAltName), never skipped.
        Some(_) => redis::ConnectionAddr::TcpTls {
            host: s.host.clone(),
            port: s.port,
            insecure: false,
            tls_params: None,
        },
    };
    let info = redis::IntoConnectionInfo::into_connection_info(addr)
        .map_err(FleetError::Redis)?
        .set_redis_settings(redis_info);
    let client = match &s.tls {
        // Only this CA's certificates are trusted, and/or this client
        // certificate is presented (both checked at config load).
        Some(t) if t.ca.is_some() || t.client.is_some() => redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: t.client.as_ref().map(|c| redis::ClientTlsConfig {
                    client_cert: c.cert.clone(),
                    client_key: c.key.clone(),
                }),
                root_cert: t.ca.clone(),
            },
        ),
        // Plain TCP, or TLS with the system's roots.
        _ => redis::Client::open(info),
    }
    .map_err(FleetError::Redis)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(s.timeout))
        .set_response_timeout(Some(s.timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(5));
    ConnectionManager::new_lazy_with_config(client, config).map_err(FleetError::Redis)
}

/// Wall-clock milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A new epoch id: time and process, distinct enough between hosts that
/// create one at the same moment (only one `SET NX` wins anyway).
pub fn fresh_epoch() -> String {
    use std::hash::{BuildHasher, RandomState};
    let r = RandomState::new().hash_one(now_ms());
    format!("{:x}-{r:016x}", now_ms())
}

#[cfg(test)]
mod tests {
    use super::StreamId;

    #[test]
    fn stream_ids_order_numerically() {
        let a = StreamId::parse("1700000000000-9").unwrap();
        let b = StreamId::parse("1700000000000-10").unwrap();
        assert!(a < b);
        assert_eq!(b.to_string(), "1700000000000-10");
        assert!(StreamId::parse("x-1").is_none());
        assert!(StreamId::parse("12").is_none());
    }

    fn read(first: &str, last: &str, removed: u64) -> super::LogRead {
        super::LogRead {
            deleted: StreamId::default(),
            first: StreamId::parse(first).unwrap(),
            last: StreamId::parse(last).unwrap(),
            removed,
            entries: Vec::new(),
        }
    }

    #[test]
    fn a_gap_is_seen_when_entries_after_the_cursor_may_be_gone() {
        let at = |s: &str| StreamId::parse(s).unwrap();
        // Never trimmed: reading on is exact, even from before the first.
        assert!(!read("5-0", "9-0", 0).gap_after(at("0-0")));
        // Trimmed, but the cursor is still in the log.
        assert!(!read("5-0", "9-0", 3).gap_after(at("6-0")));
        // Trimmed past the cursor, or trimmed empty after it.
        assert!(read("5-0", "9-0", 3).gap_after(at("4-0")));
        assert!(read("0-0", "9-0", 9).gap_after(at("4-0")));
        // Nothing new since the cursor.
        assert!(!read("0-0", "9-0", 9).gap_after(at("9-0")));
    }
}
