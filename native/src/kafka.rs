//! One Kafka partition read in batches straight into Rust buffers.
//!
//! confluent-kafka makes a Python `Message` per record (with its own bytes,
//! key, topic name) and frees it after the batch: at a million records a
//! second that is a third of the package's time. Here librdkafka's batch
//! call fills a `MessageBatch` that keeps every value end to end in one
//! buffer; the JSON decoder reads it in place, and Python objects are made
//! only for what asks for them (a dead letter's raw record, the values for a
//! decoder without a native path).

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::ptr;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use rdkafka_sys as rd;

const ERRSTR_SIZE: usize = 512;

/// librdkafka's handles for one consumer; they may be used from any thread.
struct Handles {
    rk: *mut rd::rd_kafka_t,
    queue: *mut rd::rd_kafka_queue_t,
    /// Room for the message pointers of one read, kept between reads.
    scratch: Vec<*mut rd::rd_kafka_message_t>,
}

unsafe impl Send for Handles {}

impl Handles {
    /// Leaves the (never joined) group and frees everything; may block briefly.
    fn destroy(self) {
        unsafe {
            rd::rd_kafka_queue_destroy(self.queue);
            rd::rd_kafka_consumer_close(self.rk);
            rd::rd_kafka_destroy(self.rk);
        }
    }
}

fn err_text(err: rd::rd_kafka_resp_err_t) -> String {
    unsafe { CStr::from_ptr(rd::rd_kafka_err2str(err)) }.to_string_lossy().into_owned()
}

fn err_name(err: rd::rd_kafka_resp_err_t) -> String {
    unsafe { CStr::from_ptr(rd::rd_kafka_err2name(err)) }.to_string_lossy().into_owned()
}

/// A one-partition list for assign and seek.
struct PartitionList(*mut rd::rd_kafka_topic_partition_list_t);

impl PartitionList {
    fn one(topic: &CStr, partition: i32, offset: i64) -> PartitionList {
        unsafe {
            let list = rd::rd_kafka_topic_partition_list_new(1);
            let tp = rd::rd_kafka_topic_partition_list_add(list, topic.as_ptr(), partition);
            (*tp).offset = offset;
            PartitionList(list)
        }
    }
}

impl Drop for PartitionList {
    fn drop(&mut self) {
        unsafe { rd::rd_kafka_topic_partition_list_destroy(self.0) }
    }
}

/// A consumer of one topic partition (`assign`, never `subscribe`: the
/// position lives in the dataflow's recovery store, nothing is committed).
#[pyclass(module = "iot_native._native", frozen)]
pub struct PartitionReader {
    handles: Arc<Mutex<Option<Handles>>>,
    /// The next read, when it was started before it was asked for (or
    /// records a smaller read left over). Locked before `handles`, never after.
    ahead: Mutex<Option<Ahead>>,
    /// After a full read, start the next one on another thread.
    read_ahead: bool,
    topic: CString,
    topic_name: String,
    partition: i32,
}

/// A read taken ahead of its call: while Python decodes one batch, the next
/// is taken off librdkafka's queue (a fifth of a replay's time on the
/// worker's thread when done there).
enum Ahead {
    Running(Receiver<Result<MessageBatch, String>>),
    Ready(Box<MessageBatch>),
}

impl Ahead {
    /// Starts `read` on the process's read-ahead thread.
    fn start(read: impl FnOnce() -> Result<MessageBatch, String> + Send + 'static) -> Ahead {
        let (done, outcome) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _ = done.send(read());
        });
        if let Err(job) = run_on_read_ahead_thread(job) {
            job(); // no thread to run it: read now
        }
        Ahead::Running(outcome)
    }

    /// The read's outcome, once it has finished.
    fn finish(self) -> Result<MessageBatch, String> {
        match self {
            Ahead::Running(outcome) => outcome.recv().map_err(|_| "the read-ahead thread stopped".to_string())?,
            Ahead::Ready(batch) => Ok(*batch),
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs `job` on the one thread that takes every reader's reads ahead: reads
/// are asked for one at a time anyway, and a thread per read would give
/// each its own malloc arena (90 MB more at the peak of a 2M-record replay).
/// A forked child, which has the handle but not the thread, starts its own.
fn run_on_read_ahead_thread(job: Job) -> Result<(), Job> {
    static THREAD: Mutex<Option<(u32, mpsc::Sender<Job>)>> = Mutex::new(None);
    let Ok(mut thread) = THREAD.lock() else { return Err(job) };
    let pid = std::process::id();
    if thread.as_ref().is_none_or(|(owner, _)| *owner != pid) {
        let (jobs, queue) = mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name("iot-read-ahead".into())
            .spawn(move || queue.into_iter().for_each(|job| job()));
        if started.is_err() {
            return Err(job);
        }
        *thread = Some((pid, jobs));
    }
    match thread.as_ref() {
        Some((_, jobs)) => jobs.send(job).map_err(|mpsc::SendError(job)| job),
        None => Err(job),
    }
}

impl PartitionReader {
    /// Runs `f` on the open handles without the GIL: a read or a seek may wait,
    /// and the lock is only ever waited for without the GIL (no deadlock with
    /// a thread that holds the GIL and wants the lock).
    fn with_handles<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut Handles) -> Result<T, String> + Send) -> PyResult<T> {
        py.detach(|| on_open(&self.handles, f)).map_err(PyRuntimeError::new_err)
    }

    /// `with_handles` for a call that moves the reader: a read taken ahead
    /// is dropped first, and none can start until `f` is done.
    fn moving<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut Handles) -> Result<T, String> + Send) -> PyResult<T> {
        py.detach(|| {
            let mut ahead = locked(&self.ahead)?;
            drop_ahead(&mut ahead);
            on_open(&self.handles, f)
        })
        .map_err(PyRuntimeError::new_err)
    }

    /// Drops a read taken ahead and frees librdkafka's handles (close and drop).
    fn shut(&self) {
        if let Ok(mut ahead) = locked(&self.ahead) {
            drop_ahead(&mut ahead);
        }
        if let Some(h) = locked(&self.handles).ok().and_then(|mut guard| guard.take()) {
            h.destroy();
        }
    }
}

/// `mutex` locked, or why not.
fn locked<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>, String> {
    mutex.lock().map_err(|_| "reader lock poisoned".to_string())
}

/// Waits for a read taken ahead, if any, and drops its records: the reader moves or closes.
fn drop_ahead(ahead: &mut Option<Ahead>) {
    if let Some(dropped) = ahead.take() {
        let _ = dropped.finish();
    }
}

/// Runs `f` on `handles` unless the reader is closed, from any thread.
fn on_open<T>(handles: &Mutex<Option<Handles>>, f: impl FnOnce(&mut Handles) -> Result<T, String>) -> Result<T, String> {
    let mut guard = locked(handles)?;
    match guard.as_mut() {
        Some(h) => f(h),
        None => Err("the reader is closed".to_string()),
    }
}

/// One read on `handles`, from any thread.
fn read_on(handles: &Mutex<Option<Handles>>, max_messages: usize, timeout_ms: i32, topic: &str, partition: i32) -> Result<MessageBatch, String> {
    on_open(handles, |h| read_batch(h, max_messages, timeout_ms, topic, partition))
}

#[pymethods]
impl PartitionReader {
    /// `config`: librdkafka properties (a `group.id` among them, as for any consumer).
    /// `read_ahead`: after a read that filled its batch, take the next one on
    /// another thread, to be handed over by the next `consume`.
    #[new]
    #[pyo3(signature = (config, topic, partition, read_ahead=false))]
    fn new(config: Vec<(String, String)>, topic: String, partition: i32, read_ahead: bool) -> PyResult<Self> {
        let topic_c = CString::new(topic.clone()).map_err(|_| PyValueError::new_err("topic name contains NUL"))?;
        let mut errstr = [0 as c_char; ERRSTR_SIZE];
        unsafe {
            let conf = rd::rd_kafka_conf_new();
            for (key, value) in &config {
                let (k, v) = match (CString::new(key.as_str()), CString::new(value.as_str())) {
                    (Ok(k), Ok(v)) => (k, v),
                    _ => {
                        rd::rd_kafka_conf_destroy(conf);
                        return Err(PyValueError::new_err(format!("Kafka property {key:?} contains NUL")));
                    }
                };
                let res = rd::rd_kafka_conf_set(conf, k.as_ptr(), v.as_ptr(), errstr.as_mut_ptr(), ERRSTR_SIZE);
                if res != rd::rd_kafka_conf_res_t::RD_KAFKA_CONF_OK {
                    rd::rd_kafka_conf_destroy(conf);
                    let why = CStr::from_ptr(errstr.as_ptr()).to_string_lossy();
                    return Err(PyValueError::new_err(format!("Kafka property {key}: {why}")));
                }
            }
            let rk = rd::rd_kafka_new(rd::rd_kafka_type_t::RD_KAFKA_CONSUMER, conf, errstr.as_mut_ptr(), ERRSTR_SIZE);
            if rk.is_null() {
                rd::rd_kafka_conf_destroy(conf);
                let why = CStr::from_ptr(errstr.as_ptr()).to_string_lossy();
                return Err(PyValueError::new_err(format!("Kafka consumer: {why}")));
            }
            rd::rd_kafka_poll_set_consumer(rk); // errors and the rest arrive with the records
            let queue = rd::rd_kafka_queue_get_consumer(rk);
            if queue.is_null() {
                rd::rd_kafka_destroy(rk);
                return Err(PyValueError::new_err("Kafka consumer: no consumer queue (is group.id set?)"));
            }
            let handles = Handles { rk, queue, scratch: Vec::new() };
            Ok(PartitionReader {
                handles: Arc::new(Mutex::new(Some(handles))),
                ahead: Mutex::new(None),
                read_ahead,
                topic: topic_c,
                topic_name: topic,
                partition,
            })
        }
    }

    /// Starts reading at `offset`.
    fn assign(&self, py: Python<'_>, offset: i64) -> PyResult<()> {
        self.moving(py, |h| {
            let list = PartitionList::one(&self.topic, self.partition, offset);
            let err = unsafe { rd::rd_kafka_assign(h.rk, list.0) };
            if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err(format!("assign {}/{}: {}", self.topic_name, self.partition, err_text(err)));
            }
            Ok(())
        })
    }

    /// Moves the next read to `offset` (of an assigned partition).
    #[pyo3(signature = (offset, timeout_ms=10000))]
    fn seek(&self, py: Python<'_>, offset: i64, timeout_ms: i32) -> PyResult<()> {
        self.moving(py, |h| {
            let list = PartitionList::one(&self.topic, self.partition, offset);
            let error = unsafe { rd::rd_kafka_seek_partitions(h.rk, list.0, timeout_ms as c_int) };
            if !error.is_null() {
                let text = unsafe { CStr::from_ptr(rd::rd_kafka_error_string(error)) }.to_string_lossy().into_owned();
                unsafe { rd::rd_kafka_error_destroy(error) };
                return Err(format!("seek {}/{}: {text}", self.topic_name, self.partition));
            }
            let result = unsafe { (*rd::rd_kafka_topic_partition_list_find(list.0, self.topic.as_ptr(), self.partition)).err };
            if result != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err(format!("seek {}/{}: {}", self.topic_name, self.partition, err_text(result)));
            }
            Ok(())
        })
    }

    /// (low, high) offsets: asked of the broker (waiting up to `timeout_ms`),
    /// or as last seen by the fetcher when `cached` ((-1001, -1001) before any).
    #[pyo3(signature = (cached=false, timeout_ms=10000))]
    fn watermarks(&self, py: Python<'_>, cached: bool, timeout_ms: i32) -> PyResult<(i64, i64)> {
        self.with_handles(py, |h| {
            let (mut low, mut high) = (-1001i64, -1001i64);
            let (topic, partition) = (self.topic.as_ptr(), self.partition);
            let err = unsafe {
                if cached {
                    rd::rd_kafka_get_watermark_offsets(h.rk, topic, partition, &mut low, &mut high)
                } else {
                    rd::rd_kafka_query_watermark_offsets(h.rk, topic, partition, &mut low, &mut high, timeout_ms as c_int)
                }
            };
            if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                return Err(format!("watermark offsets of {}/{}: {} ({})", self.topic_name, self.partition, err_text(err), err_name(err)));
            }
            Ok((low, high))
        })
    }

    /// Up to `max_messages` records, waiting at most `timeout_ms` for the first.
    ///
    /// A read taken ahead is handed over first (what it holds beyond
    /// `max_messages` stays for the next call); one that found nothing is
    /// replaced by a read now, so a caught-up partition sees new records as
    /// soon as without reading ahead, which only starts after a full read.
    fn consume(&self, py: Python<'_>, max_messages: usize, timeout_ms: i32) -> PyResult<MessageBatch> {
        py.detach(|| -> Result<MessageBatch, String> {
            let mut ahead = locked(&self.ahead)?;
            let early = ahead.take().map(Ahead::finish).transpose()?;
            let batch = match early {
                Some(mut batch) if batch.len() > 0 || !batch.errors.is_empty() => {
                    if batch.len() > max_messages {
                        *ahead = Some(Ahead::Ready(Box::new(batch.split_off(max_messages))));
                    }
                    batch
                }
                _ => read_on(&self.handles, max_messages, timeout_ms, &self.topic_name, self.partition)?,
            };
            if self.read_ahead && ahead.is_none() && max_messages > 0 && batch.len() == max_messages {
                let (handles, topic, partition) = (Arc::clone(&self.handles), self.topic_name.clone(), self.partition);
                *ahead = Some(Ahead::start(move || read_on(&handles, max_messages, 0, &topic, partition)));
            }
            Ok(batch)
        })
        .map_err(PyRuntimeError::new_err)
    }

    /// Whether the next read was taken (or started) ahead of its call.
    #[getter]
    fn reading_ahead(&self) -> bool {
        self.ahead.lock().is_ok_and(|guard| guard.is_some())
    }

    /// Stops the consumer; later calls fail, a second close does nothing.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.shut());
    }
}

impl Drop for PartitionReader {
    fn drop(&mut self) {
        self.shut();
    }
}

/// Byte strings (or None) laid end to end: string i is `bytes[ends[i-1]..ends[i]]`.
struct Packed {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    nulls: Vec<bool>,
}

impl Packed {
    fn with_capacity(items: usize, bytes: usize) -> Packed {
        Packed { bytes: Vec::with_capacity(bytes), ends: Vec::with_capacity(items), nulls: Vec::with_capacity(items) }
    }

    /// Appends `len` bytes at `data`, or None when `data` is null.
    ///
    /// # Safety
    /// `data` is null or valid for reads of `len` bytes.
    unsafe fn push(&mut self, data: *const c_void, len: usize) {
        self.nulls.push(data.is_null());
        if !data.is_null() {
            self.bytes.extend_from_slice(unsafe { std::slice::from_raw_parts(data as *const u8, len) });
        }
        self.ends.push(self.bytes.len());
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 { 0 } else { self.ends[i - 1] }
    }

    fn get(&self, i: usize) -> Option<&[u8]> {
        (!self.nulls[i]).then(|| &self.bytes[self.start(i)..self.ends[i]])
    }

    fn any_null(&self, start: usize, stop: usize) -> bool {
        self.nulls[start..stop].iter().any(|&null| null)
    }

    /// The total length of strings start..stop (0 for an empty or out-of-bounds range).
    fn range_bytes(&self, start: usize, stop: usize) -> usize {
        if start >= stop || stop > self.ends.len() { 0 } else { self.ends[stop - 1] - self.start(start) }
    }

    /// Strings `at..` moved out into a Packed of their own.
    fn split_off(&mut self, at: usize) -> Packed {
        let cut = self.start(at);
        let bytes = self.bytes.split_off(cut);
        let ends = self.ends.split_off(at).into_iter().map(|end| end - cut).collect();
        Packed { bytes, ends, nulls: self.nulls.split_off(at) }
    }
}

/// A record's headers in order: (name, value or None).
type Headers = Vec<(String, Option<Vec<u8>>)>;

/// The records of one read, with the errors librdkafka reported in it.
#[pyclass(module = "iot_native._native", frozen)]
pub struct MessageBatch {
    topic: String,
    partition: i32,
    offsets: Vec<i64>,
    values: Packed,
    keys: Packed,
    headers: Vec<Option<Headers>>,
    /// librdkafka's timestamp of each record (-1 when the broker gave none) and whether it gave one.
    timestamps: Vec<i64>,
    timestamp_known: Vec<bool>,
    /// (code, name, text) of each error event in the read.
    errors: Vec<(i32, String, String)>,
}

impl MessageBatch {
    /// Record i's value, None for a null value.
    pub fn value(&self, i: usize) -> Option<&[u8]> {
        self.values.get(i)
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Records `at..` moved out into a batch of their own (the errors stay here).
    fn split_off(&mut self, at: usize) -> MessageBatch {
        MessageBatch {
            topic: self.topic.clone(),
            partition: self.partition,
            offsets: self.offsets.split_off(at),
            values: self.values.split_off(at),
            keys: self.keys.split_off(at),
            headers: self.headers.split_off(at),
            timestamps: self.timestamps.split_off(at),
            timestamp_known: self.timestamp_known.split_off(at),
            errors: Vec::new(),
        }
    }

    fn check(&self, i: isize) -> PyResult<usize> {
        let n = self.len() as isize;
        let j = if i < 0 { i + n } else { i };
        if j < 0 || j >= n {
            return Err(PyIndexError::new_err("record index out of range"));
        }
        Ok(j as usize)
    }
}

fn read_batch(h: &mut Handles, max_messages: usize, timeout_ms: i32, topic: &str, partition: i32) -> Result<MessageBatch, String> {
    let messages = &mut h.scratch;
    messages.resize(max_messages.max(1), ptr::null_mut());
    let n = unsafe { rd::rd_kafka_consume_batch_queue(h.queue, timeout_ms as c_int, messages.as_mut_ptr(), messages.len()) };
    if n < 0 {
        let err = unsafe { rd::rd_kafka_last_error() };
        return Err(format!("consume {topic}/{partition}: {}", err_text(err)));
    }
    let n = n as usize;
    let mut batch = MessageBatch {
        topic: topic.to_string(),
        partition,
        offsets: Vec::with_capacity(n),
        values: Packed::with_capacity(n, messages[..n].iter().map(|&m| unsafe { (*m).len }).sum()),
        keys: Packed::with_capacity(n, 0),
        headers: Vec::with_capacity(n),
        timestamps: Vec::with_capacity(n),
        timestamp_known: Vec::with_capacity(n),
        errors: Vec::new(),
    };
    for &m in &messages[..n] {
        unsafe {
            let msg = &*m;
            if msg.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                let detail = if msg.payload.is_null() {
                    String::new()
                } else {
                    String::from_utf8_lossy(std::slice::from_raw_parts(msg.payload as *const u8, msg.len)).into_owned()
                };
                let text = if detail.is_empty() { err_text(msg.err) } else { detail };
                batch.errors.push((msg.err as i32, err_name(msg.err), text));
            } else {
                batch.offsets.push(msg.offset);
                batch.values.push(msg.payload, msg.len);
                batch.keys.push(msg.key, msg.key_len);
                batch.headers.push(headers_of(m));
                let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
                let ts = rd::rd_kafka_message_timestamp(m, &mut kind);
                batch.timestamps.push(ts);
                batch.timestamp_known.push(kind != rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE);
            }
            rd::rd_kafka_message_destroy(m);
        }
    }
    Ok(batch)
}

/// A record's headers in order, None when it has none.
unsafe fn headers_of(m: *mut rd::rd_kafka_message_t) -> Option<Headers> {
    let mut hdrs: *mut rd::rd_kafka_headers_t = ptr::null_mut();
    if unsafe { rd::rd_kafka_message_headers(m, &mut hdrs) } != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return None;
    }
    let count = unsafe { rd::rd_kafka_header_cnt(hdrs) };
    let mut out = Vec::with_capacity(count);
    for idx in 0..count {
        let (mut name, mut value, mut size): (*const c_char, *const c_void, usize) = (ptr::null(), ptr::null(), 0);
        if unsafe { rd::rd_kafka_header_get_all(hdrs, idx, &mut name, &mut value, &mut size) }
            != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            break;
        }
        let name = unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned();
        let value = if value.is_null() { None } else { Some(unsafe { std::slice::from_raw_parts(value as *const u8, size) }.to_vec()) };
        out.push((name, value));
    }
    Some(out)
}

#[pymethods]
impl MessageBatch {
    fn __len__(&self) -> usize {
        self.len()
    }

    /// Offset of the first record (None when the read had none).
    #[getter]
    fn first_offset(&self) -> Option<i64> {
        self.offsets.first().copied()
    }

    #[getter]
    fn last_offset(&self) -> Option<i64> {
        self.offsets.last().copied()
    }

    /// Whether the offsets run without a gap (no compacted or transaction-marker holes).
    fn contiguous(&self) -> bool {
        match (self.offsets.first(), self.offsets.last()) {
            (Some(first), Some(last)) => last - first == self.offsets.len() as i64 - 1,
            _ => true,
        }
    }

    fn offsets(&self) -> Vec<i64> {
        self.offsets.clone()
    }

    /// Kafka record timestamps in epoch milliseconds, -1 where the broker gave none.
    fn timestamps(&self) -> Vec<i64> {
        self.timestamps.clone()
    }

    /// Every value as bytes (None for a null value), for decoders that take Python values.
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items: Vec<Option<Bound<'py, PyBytes>>> = (0..self.len()).map(|i| self.value(i).map(|v| PyBytes::new(py, v))).collect();
        PyList::new(py, items)
    }

    /// Record i's value (None for a null value).
    #[pyo3(name = "value")]
    fn py_value<'py>(&self, py: Python<'py>, i: isize) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let i = self.check(i)?;
        Ok(self.value(i).map(|v| PyBytes::new(py, v)))
    }

    /// `prefix`, then the values of records start..stop each followed by
    /// `separator`, then `suffix`, in one bytes object; None when a value in
    /// the range is null. (An Avro container block is laid out so.)
    fn joined<'py>(
        &self,
        py: Python<'py>,
        start: usize,
        stop: usize,
        separator: &[u8],
        prefix: &[u8],
        suffix: &[u8],
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        if start > stop || stop > self.len() {
            return Err(PyIndexError::new_err("record range out of bounds"));
        }
        if self.values.any_null(start, stop) {
            return Ok(None);
        }
        let size = prefix.len() + self.value_bytes(start, stop) + (stop - start) * separator.len() + suffix.len();
        let joined = PyBytes::new_with(py, size, |out| {
            let mut at = 0;
            let mut put = |bytes: &[u8]| {
                out[at..at + bytes.len()].copy_from_slice(bytes);
                at += bytes.len();
            };
            put(prefix);
            for i in start..stop {
                put(self.value(i).unwrap_or_default());
                put(separator);
            }
            put(suffix);
            Ok(())
        })?;
        Ok(Some(joined))
    }

    /// The total length of the values of records start..stop.
    fn value_bytes(&self, start: usize, stop: usize) -> usize {
        self.values.range_bytes(start, stop)
    }

    /// Record i as (topic, partition, offset, key, value, headers, timestamp).
    #[allow(clippy::type_complexity)]
    fn record<'py>(
        &self,
        py: Python<'py>,
        i: isize,
    ) -> PyResult<(String, i32, i64, Option<Bound<'py, PyBytes>>, Option<Bound<'py, PyBytes>>, Option<Vec<(String, Option<Bound<'py, PyBytes>>)>>, Option<i64>)> {
        let i = self.check(i)?;
        let headers = self.headers[i]
            .as_ref()
            .map(|hs| hs.iter().map(|(k, v)| (k.clone(), v.as_ref().map(|v| PyBytes::new(py, v)))).collect());
        Ok((
            self.topic.clone(),
            self.partition,
            self.offsets[i],
            self.keys.get(i).map(|k| PyBytes::new(py, k)),
            self.value(i).map(|v| PyBytes::new(py, v)),
            headers,
            self.timestamp_known[i].then_some(self.timestamps[i]),
        ))
    }

    /// (code, name, text) of each error the read reported.
    fn errors(&self) -> Vec<(i32, String, String)> {
        self.errors.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::Packed;

    fn packed(items: &[Option<&str>]) -> Packed {
        let mut p = Packed::with_capacity(items.len(), 0);
        for item in items {
            match item {
                Some(s) => unsafe { p.push(s.as_ptr().cast(), s.len()) },
                None => unsafe { p.push(std::ptr::null(), 0) },
            }
        }
        p
    }

    #[test]
    fn split_packed_strings_keep_their_bytes_and_nulls() {
        let items = [Some("ab"), None, Some(""), Some("cde"), None, Some("f")];
        for at in 0..=items.len() {
            let mut head = packed(&items);
            let tail = head.split_off(at);
            let got: Vec<Option<&[u8]>> = (0..at).map(|i| head.get(i)).chain((0..items.len() - at).map(|i| tail.get(i))).collect();
            let want: Vec<Option<&[u8]>> = items.iter().map(|s| s.map(str::as_bytes)).collect();
            assert_eq!(got, want, "split at {at}");
            assert_eq!(head.ends.len(), at);
        }
    }
}
