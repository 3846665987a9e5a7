//! The queue between the threads that log and the thread that writes the
//! lines out: bounded, lossy, and batched.
//!
//! Bounded and lossy because a review must never wait on a log reader
//! (see [`super::log`]): past its capacity in lines, a new line is dropped
//! and counted, and the logger returns at once.
//!
//! Batched because waking a thread costs more than writing a line. A
//! channel with a blocked receiver (tracing-appender's queue) wakes the
//! writer for nearly every line at webhook rates, since the writer empties
//! the queue faster than reviews fill it: a futex wake-up, a context switch
//! and a `write(2)` per review, on the same two cores that answer reviews.
//! Here the writer, once it has written a batch, lingers for
//! [`LINGER`] before it takes the next, and a logger wakes it only when it
//! is asleep with nothing to do. A busy webhook thus pays one wake-up and
//! one `write(2)` per [`LINGER`], whatever its rate; a quiet one still sees
//! each line at once.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer gathers lines after writing a batch. A line waits
/// at most this long (when the writer is not stalled), and a busy webhook
/// pays one wake-up of the writer per this long.
pub const LINGER: Duration = Duration::from_millis(10);

/// How long dropping the [`Guard`] waits for the queued lines to be
/// written: long enough for any working reader, short enough that a
/// stalled one does not hold up the exit.
const FLUSH_WAIT: Duration = Duration::from_secs(1);

/// A batch buffer that grew past this (lines of hostile size, or a long
/// stall) is given back to the allocator once written, instead of being
/// kept for the next batch.
const KEEP_BYTES: usize = 1 << 20;

/// What the loggers and the writer share.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when the writer is asleep and a line arrives, and at stop.
    wake: Condvar,
    /// Lines dropped because the queue was full.
    dropped: AtomicU64,
    /// Most lines held.
    capacity: usize,
}

#[derive(Debug, Default)]
struct State {
    /// The queued lines, back to back.
    bytes: Vec<u8>,
    lines: usize,
    /// The writer sleeps until a line arrives (not while it lingers).
    waiting: bool,
    /// The [`Guard`] was dropped: write out what is queued and end.
    stopping: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A logger cannot leave the state half-changed (it only appends),
        // so a panic elsewhere is no reason to stop logging.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The loggers' end: a [`MakeWriter`] for tracing-subscriber. Each
/// `write` call is taken as one whole line, which is how tracing-subscriber
/// writes an event.
#[derive(Debug, Clone)]
pub struct LineQueue {
    shared: Arc<Shared>,
}

impl LineQueue {
    /// Lines dropped so far because the queue was full.
    pub fn dropped_lines(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

/// One logger's handle for one line.
#[derive(Debug)]
pub struct LineWriter<'a> {
    shared: &'a Shared,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut state = self.shared.lock();
        if state.lines >= self.shared.capacity {
            drop(state);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(line.len());
        }
        state.bytes.extend_from_slice(line);
        state.lines += 1;
        let wake = std::mem::take(&mut state.waiting);
        drop(state);
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LineQueue {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

/// Keeps the writer thread. Dropping it writes out the lines still queued,
/// waiting at most about a second if the output is stalled.
#[must_use = "dropping the guard stops the log writer"]
#[derive(Debug)]
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.wake.notify_all();
        let Some(thread) = self.thread.take() else {
            return;
        };
        let deadline = Instant::now() + FLUSH_WAIT;
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
}

/// Starts a thread named `name` that writes the lines queued on the
/// returned [`LineQueue`] to `out`, holding at most `capacity` lines
/// (at least one) while `out` falls behind.
pub fn spawn<W: Write + Send + 'static>(
    out: W,
    capacity: usize,
    name: &str,
) -> io::Result<(LineQueue, Guard)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        wake: Condvar::new(),
        dropped: AtomicU64::new(0),
        capacity: capacity.max(1),
    });
    let writer = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || write_out(&writer, out))?;
    Ok((
        LineQueue {
            shared: Arc::clone(&shared),
        },
        Guard {
            shared,
            thread: Some(thread),
        },
    ))
}

/// The writer thread: take everything queued, write it in one go, linger,
/// repeat; once stopping, write what is left and end.
fn write_out<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        {
            let mut state = shared.lock();
            while state.bytes.is_empty() && !state.stopping {
                state.waiting = true;
                state = shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            state.waiting = false;
            std::mem::swap(&mut state.bytes, &mut batch);
            state.lines = 0;
        }
        if batch.is_empty() {
            return; // stopping, and nothing left
        }
        // A failed write loses this batch, as a failed write to stderr
        // loses a line anywhere; nothing better can be done with it.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if batch.capacity() > KEEP_BYTES {
            batch = Vec::new();
        }
        let state = shared.lock();
        if !state.stopping {
            let _ = shared.wake.wait_timeout(state, LINGER);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// An output that reads nothing until `open` says so, as a stalled
    /// container runtime does to a full pipe, and counts its writes.
    struct Stalled {
        open: Option<mpsc::Receiver<()>>,
        out: Arc<Mutex<Vec<u8>>>,
        writes: Arc<AtomicU64>,
    }

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if let Some(open) = self.open.take() {
                let _ = open.recv();
            }
            self.writes.fetch_add(1, Ordering::Relaxed);
            self.out.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn numbered(out: &[u8]) -> Vec<usize> {
        std::str::from_utf8(out)
            .expect("UTF-8")
            .lines()
            .map(|l| l.parse().expect("a whole line"))
            .collect()
    }

    #[test]
    fn a_stalled_output_never_blocks_the_logger_and_what_is_kept_arrives_whole_in_order() {
        const CAPACITY: usize = 1_000;
        let (open, gate) = mpsc::channel();
        let out = Arc::new(Mutex::new(Vec::new()));
        let stalled = Stalled {
            open: Some(gate),
            out: Arc::clone(&out),
            writes: Arc::default(),
        };
        let (queue, guard) = spawn(stalled, CAPACITY, "test-log").expect("thread");
        let lines = 3 * CAPACITY;
        // On a thread, so that a blocking write fails the test instead of
        // hanging it.
        let (done, finished) = mpsc::channel();
        let logger = queue.clone();
        std::thread::spawn(move || {
            for i in 0..lines {
                let _ = logger.make_writer().write_all(format!("{i}\n").as_bytes());
            }
            let _ = done.send(());
        });
        finished
            .recv_timeout(Duration::from_secs(20))
            .expect("logging went on while nobody read the lines");
        let lost = usize::try_from(queue.dropped_lines()).expect("count");
        // The queue holds CAPACITY lines, and the batch stuck in the write
        // whatever had arrived when the writer first woke: up to CAPACITY
        // lines, or none if the logger was done before the writer woke.
        assert!(
            (CAPACITY..=2 * CAPACITY).contains(&lost),
            "dropped {lost} of {lines}"
        );

        open.send(()).expect("reader");
        drop(guard); // writes out what is queued
        let kept = numbered(&out.lock().expect("lock"));
        assert_eq!(kept.len() + lost, lines, "every line kept or counted");
        assert!(kept.windows(2).all(|w| w[0] < w[1]), "in order");
        assert_eq!(kept[0], 0, "the first lines are kept, the latest dropped");
    }

    /// The point of the queue: a line that arrives while the writer
    /// lingers waits for the next batch instead of waking it. Lines sent
    /// one at a time, each well after the writer could have written the
    /// last, go out in about one write per LINGER; a writer woken for each
    /// line (no linger, or tracing-appender's queue) makes one write per
    /// line, 200 here.
    #[test]
    fn lines_that_arrive_while_the_writer_lingers_are_written_together() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let writes = Arc::new(AtomicU64::new(0));
        let (queue, guard) = spawn(
            Stalled {
                open: None,
                out: Arc::clone(&out),
                writes: Arc::clone(&writes),
            },
            10_000,
            "test-log",
        )
        .expect("thread");
        let lines = 200;
        for i in 0..lines {
            queue
                .make_writer()
                .write_all(format!("{i}\n").as_bytes())
                .expect("queued");
            std::thread::sleep(Duration::from_micros(200));
        }
        drop(guard);
        assert_eq!(
            numbered(&out.lock().expect("lock")),
            (0..lines).collect::<Vec<_>>()
        );
        let writes = writes.load(Ordering::Relaxed);
        // 200 lines over 40 ms or more: about 4 batches of 10 ms; a slow
        // machine stretches the sleeps, which makes fewer, larger batches.
        assert!((1..=lines as u64 / 4).contains(&writes), "{writes} writes");
        assert_eq!(queue.dropped_lines(), 0);
    }

    #[test]
    fn a_quiet_logger_sees_its_line_written_without_waiting_for_more() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let (queue, _guard) = spawn(
            Stalled {
                open: None,
                out: Arc::clone(&out),
                writes: Arc::default(),
            },
            10,
            "test-log",
        )
        .expect("thread");
        queue.make_writer().write_all(b"0\n").expect("queued");
        let deadline = Instant::now() + Duration::from_secs(10);
        while out.lock().expect("lock").is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(numbered(&out.lock().expect("lock")), vec![0]);
    }

    #[test]
    fn dropping_the_guard_of_a_stalled_output_returns_within_about_a_second() {
        let (_open, gate) = mpsc::channel::<()>();
        let (queue, guard) = spawn(
            Stalled {
                open: Some(gate),
                out: Arc::default(),
                writes: Arc::default(),
            },
            10,
            "test-log",
        )
        .expect("thread");
        queue.make_writer().write_all(b"0\n").expect("queued");
        let started = Instant::now();
        drop(guard);
        assert!(started.elapsed() < FLUSH_WAIT + Duration::from_secs(5));
    }
}
