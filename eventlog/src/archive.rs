//! Archives of the log: NDJSON, streamed, gzip-compressed when the file
//! name ends in `.gz`. The first line names the format, then one line per
//! event in log order (the stored envelope: the Kafka record format), one
//! line per data key (`{"data_key": …}`, still wrapped by the master key:
//! without the key file an archive holds no readable personal data), and a
//! last line with the counts and the checksum of the events
//! ([`crate::copy::Checksum`]). Version 1 archives (no data keys) still import. An import reads the archive twice: first
//! to check both (a truncated or altered archive is refused and changes
//! nothing), then to append into an empty store, or to resume into one
//! holding a prefix of the archive (checked by event id); at the end the
//! store's checksum must equal the archive's.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};

use crate::copy::{insert, Checksum, CopyError};
use crate::protect::StoredKey;
use crate::{Cursor, Database, EventLog, Keyring, StoredEvent};

/// The first line's `format`.
pub const FORMAT: &str = "shopstream-events";

#[derive(Serialize, Deserialize)]
struct Head {
    format: String,
    version: u32,
}

#[derive(Serialize, Deserialize)]
struct Tail {
    count: u64,
    checksum: String,
    /// Data key lines (version 2).
    #[serde(default)]
    data_keys: u64,
}

#[derive(Serialize, Deserialize)]
struct KeyLine {
    data_key: StoredKey,
}

/// One line: an event, a data key, or the closing counts and checksum.
#[derive(Deserialize)]
#[serde(untagged)]
enum Line {
    Tail(Tail),
    Key(KeyLine),
    Event(Box<StoredEvent>),
}

/// The format version written.
const VERSION: u32 = 2;

fn io(e: std::io::Error) -> CopyError {
    CopyError::Archive(e.to_string())
}

fn gzipped(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// Writes every event of `db` to `path` (`-`: stdout); returns the count
/// and checksum written into the archive's last line.
///
/// # Errors
/// Database or file errors.
pub async fn export(db: &Database, path: &Path, batch: u32) -> Result<(u64, String), CopyError> {
    let raw: Box<dyn Write> = if path == Path::new("-") {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(File::create(path).map_err(io)?)
    };
    let mut out: Box<dyn Write> = if gzipped(path) {
        Box::new(BufWriter::new(GzEncoder::new(raw, Compression::default())))
    } else {
        Box::new(BufWriter::new(raw))
    };
    write_line(
        &mut out,
        &Head {
            format: FORMAT.into(),
            version: VERSION,
        },
    )?;
    let log = EventLog::new(db.clone());
    let (mut sum, mut after) = (Checksum::default(), Cursor::START);
    loop {
        let chunk = log.read_from(after, batch).await?;
        let Some(last) = chunk.last() else { break };
        after = last.cursor();
        for e in &chunk {
            sum.add(e);
            write_line(&mut out, e)?;
        }
    }
    let keys = Keyring::stored_keys(db).await?;
    for k in &keys {
        write_line(
            &mut out,
            &KeyLine {
                data_key: k.clone(),
            },
        )?;
    }
    let (checksum, count) = sum.finish();
    let tail = Tail {
        count,
        checksum: checksum.clone(),
        data_keys: keys.len() as u64,
    };
    write_line(&mut out, &tail)?;
    out.flush().map_err(io)?;
    Ok((count, checksum))
}

fn write_line<T: Serialize>(out: &mut dyn Write, value: &T) -> Result<(), CopyError> {
    serde_json::to_writer(&mut *out, value).map_err(|e| io(e.into()))?;
    out.write_all(b"\n").map_err(io)
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub events: u64,
    /// Events the target held already (a resumed import).
    pub resumed: u64,
    pub checksum: String,
}

/// Opens the archive at `path` and checks its first line.
fn open(path: &Path) -> Result<std::io::Lines<Box<dyn BufRead>>, CopyError> {
    let raw: Box<dyn Read> = Box::new(File::open(path).map_err(io)?);
    let reader: Box<dyn BufRead> = if gzipped(path) {
        Box::new(BufReader::new(MultiGzDecoder::new(raw)))
    } else {
        Box::new(BufReader::new(raw))
    };
    let mut lines = reader.lines();
    let head: Head = match lines.next() {
        Some(l) => serde_json::from_str(&l.map_err(io)?)
            .map_err(|e| CopyError::Archive(format!("not a {FORMAT} archive: {e}")))?,
        None => return Err(CopyError::Mismatch("the archive is empty".into())),
    };
    if head.format != FORMAT || !(1..=VERSION).contains(&head.version) {
        return Err(CopyError::Mismatch(format!(
            "not a {FORMAT} v1 or v{VERSION} archive ({} v{})",
            head.format, head.version
        )));
    }
    Ok(lines)
}

/// An archive's events, read one at a time, and its last line checked.
struct Reader {
    lines: std::io::Lines<Box<dyn BufRead>>,
    number: u64,
    sum: Checksum,
    tail: Option<Tail>,
    keys: Vec<StoredKey>,
}

impl Reader {
    fn open(path: &Path) -> Result<Self, CopyError> {
        Ok(Self {
            lines: open(path)?,
            number: 1,
            sum: Checksum::default(),
            tail: None,
            keys: Vec::new(),
        })
    }

    /// The next event, or `None` after the last line.
    fn next_event(&mut self) -> Result<Option<StoredEvent>, CopyError> {
        while let Some(line) = self.lines.next() {
            let line = line.map_err(io)?;
            self.number += 1;
            if self.tail.is_some() {
                return Err(CopyError::Mismatch(
                    "lines after the archive's last line".into(),
                ));
            }
            match serde_json::from_str::<Line>(&line)
                .map_err(|e| CopyError::Mismatch(format!("line {}: {e}", self.number)))?
            {
                Line::Tail(t) => self.tail = Some(t),
                Line::Key(k) => self.keys.push(k.data_key),
                Line::Event(e) => {
                    self.sum.add(&e);
                    return Ok(Some(*e));
                }
            }
        }
        Ok(None)
    }

    /// The count and checksum, when the last line agrees with the events
    /// and the data keys.
    fn finish(&mut self) -> Result<(u64, String), CopyError> {
        let tail = self.tail.as_ref().ok_or_else(|| {
            CopyError::Mismatch(
                "the archive has no last line (count and checksum): truncated".into(),
            )
        })?;
        let (checksum, count) = std::mem::take(&mut self.sum).finish();
        if tail.data_keys != self.keys.len() as u64 {
            return Err(CopyError::Mismatch(format!(
                "the archive says {} data keys, its lines are {}",
                tail.data_keys,
                self.keys.len()
            )));
        }
        if (count, &checksum) != (tail.count, &tail.checksum) {
            return Err(CopyError::Mismatch(format!(
                "the archive says {} events with checksum {}, its lines are {count} with {checksum}",
                tail.count, tail.checksum
            )));
        }
        Ok((count, checksum))
    }
}

/// Checks the archive at `path` whole (count and checksum), then appends
/// its events to `db` and checks the store against it: a damaged archive
/// changes nothing.
///
/// # Errors
/// [`CopyError::NotAPrefix`] for a store holding other events,
/// [`CopyError::Mismatch`] for a damaged archive, or database errors.
pub async fn import(db: &Database, path: &Path, batch: u32) -> Result<ImportReport, CopyError> {
    let mut check = Reader::open(path)?;
    while check.next_event()?.is_some() {}
    check.finish()?;
    let target = EventLog::new(db.clone());
    let mut held = Held::new(&target, batch);
    let (mut reader, mut pending, mut resumed) = (Reader::open(path)?, Vec::new(), 0u64);
    while let Some(e) = reader.next_event()? {
        if held.matches(&e).await? {
            resumed += 1;
            continue;
        }
        pending.push(e);
        if pending.len() >= batch as usize {
            insert(db, &pending).await?;
            pending.clear();
        }
    }
    if !pending.is_empty() {
        insert(db, &pending).await?;
    }
    let (count, checksum) = reader.finish()?;
    Keyring::restore_keys(db, &reader.keys).await?;
    let (stored, stored_count) = crate::copy::checksum(&target, batch).await?;
    if (stored_count, &stored) != (count, &checksum) {
        return Err(CopyError::Mismatch(format!(
            "the store holds {stored_count} events with checksum {stored} after the import, \
             the archive {count} with {checksum}"
        )));
    }
    Ok(ImportReport {
        events: count,
        resumed,
        checksum,
    })
}

/// The events a store already holds, compared in order with an archive's.
struct Held<'a> {
    log: &'a EventLog,
    batch: u32,
    buffer: std::collections::VecDeque<StoredEvent>,
    after: Cursor,
    exhausted: bool,
}

impl<'a> Held<'a> {
    fn new(log: &'a EventLog, batch: u32) -> Self {
        Self {
            log,
            batch,
            buffer: std::collections::VecDeque::new(),
            after: Cursor::START,
            exhausted: false,
        }
    }

    /// Whether the store already holds `e` as its next event; an event it
    /// holds that is not `e` means another store's events.
    async fn matches(&mut self, e: &StoredEvent) -> Result<bool, CopyError> {
        if self.buffer.is_empty() && !self.exhausted {
            // The target of an import is no tailer: read what is committed.
            // Below the safe horizon (cluster-wide), a transaction open on
            // any database of the server would hide what an earlier import
            // wrote, and the import would send it again.
            let chunk = self.log.read_settled_from(self.after, self.batch).await?;
            match chunk.last() {
                Some(last) => self.after = last.cursor(),
                None => self.exhausted = true,
            }
            self.buffer.extend(chunk);
        }
        match self.buffer.pop_front() {
            None => Ok(false),
            Some(held) if held.event_id == e.event_id => Ok(true),
            Some(held) => Err(CopyError::NotAPrefix(format!(
                "it holds event {} where the archive has {}",
                held.event_id, e.event_id
            ))),
        }
    }
}
