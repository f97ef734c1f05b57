//! [`Inbox`]: a core handler's own buffer between its async-nats subscription and the handler.
//!
//! async-nats' channel for the subscription is made large enough never to fill (the runtime
//! connects with [`SUBSCRIPTION_CAPACITY`]); the handler's task moves what it holds into the
//! inbox whenever the handler waits (and every millisecond otherwise), up to the handler's
//! [`Buffer`], and drops past it. So every message the client received for the handler is
//! handled, still held, or counted here as dropped: the count is exact.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_nats::{Message, Subscriber};
use futures::StreamExt;

use crate::buffer::Buffer;
use crate::stats::Tally;

/// async-nats' channel capacity for every subscription of a connection the runtime makes:
/// never reached in practice (its memory grows only with what it holds), so that the bound is
/// the handler's [`Buffer`], where drops are counted.
pub(crate) const SUBSCRIPTION_CAPACITY: usize = 1 << 28;

/// How many messages a busy handler takes straight from the subscription between two looks
/// at the clock.
const CHECK_EVERY: u32 = 32;

/// How long a busy handler (one that takes its messages without waiting) goes on taking them
/// straight from the subscription before the inbox moves the rest of the backlog in (and drops
/// past the bound). Moving a message costs more than taking it, so this is not done more often
/// than needed to hold the bound: what waits past it is at most this long's arrivals.
const FILL_INTERVAL: Duration = Duration::from_millis(1);

/// The most messages one fill moves in.
const MOVE_AT_MOST: u32 = 1 << 16;

/// The longest a run of drops goes unlogged.
const LOG_EVERY: Duration = Duration::from_secs(10);

pub(crate) struct Inbox {
    sub: Subscriber,
    held: VecDeque<Message>,
    held_bytes: usize,
    buffer: Buffer,
    /// The subscription's stream ended (drained, or the connection closed).
    ended: bool,
    /// Messages taken straight from the subscription since the last look at the clock.
    direct: u32,
    /// When a busy handler last moved the backlog in (a handler that waits does it then, without
    /// a clock read).
    filled: Instant,
    drops: Drops,
}

/// Drops since the last warning, and when it was logged.
struct Drops {
    handler: String,
    unlogged: u64,
    logged: Option<Instant>,
}

impl Inbox {
    pub(crate) fn new(sub: Subscriber, buffer: Buffer, handler: String) -> Self {
        Self {
            sub,
            held: VecDeque::new(),
            held_bytes: 0,
            buffer,
            ended: false,
            direct: 0,
            filled: Instant::now(),
            drops: Drops {
                handler,
                unlogged: 0,
                logged: None,
            },
        }
    }

    pub(crate) fn subscription(&mut self) -> &mut Subscriber {
        &mut self.sub
    }

    /// A new subscription after the old one ended; what is held stays, ahead of it.
    pub(crate) fn resubscribed(&mut self, sub: Subscriber) {
        self.sub = sub;
        self.ended = false;
    }

    /// The oldest message held, else the subscription's next.
    #[inline(always)]
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        tally: &Tally,
    ) -> Poll<Option<Message>> {
        self.poll_with(cx, tally, |m| m)
    }

    /// [`Inbox::poll_next`] into `slot` (which drops the message it held): `Ready(true)` when
    /// a message is there, `Ready(false)` when the stream ended. The message moves once, from
    /// the subscription into the slot (a serial handler's context).
    #[inline(always)]
    pub(crate) fn poll_into(
        &mut self,
        cx: &mut Context<'_>,
        tally: &Tally,
        slot: &mut Message,
    ) -> Poll<bool> {
        self.poll_with(cx, tally, |m| *slot = m)
            .map(|taken| taken.is_some())
    }

    /// The next message, handed to `take`.
    #[inline(always)]
    fn poll_with<R>(
        &mut self,
        cx: &mut Context<'_>,
        tally: &Tally,
        take: impl FnOnce(Message) -> R,
    ) -> Poll<Option<R>> {
        if !self.held.is_empty() {
            return Poll::Ready(self.pop_held(tally).map(take));
        }
        if self.ended {
            return Poll::Ready(None);
        }
        match self.sub.poll_next_unpin(cx) {
            Poll::Ready(Some(m)) => {
                let taken = take(m);
                self.took_direct(tally);
                Poll::Ready(Some(taken))
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    #[inline]
    fn pop_held(&mut self, tally: &Tally) -> Option<Message> {
        let m = self.held.pop_front()?;
        self.held_bytes -= m.length;
        if self.held.is_empty() {
            tally.buffered(0);
        }
        Some(m)
    }

    /// Counts a message taken straight from the subscription; every [`CHECK_EVERY`] of them,
    /// moves the backlog in if the last move is [`FILL_INTERVAL`] old.
    #[inline(always)]
    fn took_direct(&mut self, tally: &Tally) {
        self.direct += 1;
        if self.direct >= CHECK_EVERY {
            self.check_clock(tally);
        }
    }

    #[inline(never)]
    fn check_clock(&mut self, tally: &Tally) {
        self.direct = 0;
        if self.filled.elapsed() >= FILL_INTERVAL {
            self.filled = Instant::now();
            self.fill(
                &mut Context::from_waker(futures::task::noop_waker_ref()),
                tally,
            );
        }
    }

    /// Moves what the subscription holds into the inbox, without waiting; past the handler's
    /// buffer, drops and counts. With a real waker, a new message wakes the task to do it again.
    ///
    /// Outside tokio's cooperative budget: with the budget spent, the subscription would say it
    /// is empty while its backlog grows past the bound, neither held nor counted.
    pub(crate) fn fill(&mut self, cx: &mut Context<'_>, tally: &Tally) {
        self.direct = 0;
        let mut moved = 0;
        let mut take = std::pin::pin!(tokio::task::unconstrained(std::future::poll_fn(|cx| {
            // Bounded, in case the connection delivers as fast as this moves: the rest next time.
            while !self.ended && moved < MOVE_AT_MOST {
                match self.sub.poll_next_unpin(cx) {
                    Poll::Ready(Some(m)) => self.hold(m, tally),
                    Poll::Ready(None) => self.ended = true,
                    Poll::Pending => break,
                }
                moved += 1;
            }
            if moved == MOVE_AT_MOST {
                // Not registered with the subscription: come back for the rest.
                cx.waker().wake_by_ref();
            }
            Poll::Ready(())
        })));
        let _ = take.as_mut().poll(cx);
        tally.buffered(self.held.len());
    }

    #[inline]
    fn hold(&mut self, m: Message, tally: &Tally) {
        if self
            .buffer
            .admits(self.held.len(), self.held_bytes, m.length)
        {
            self.held_bytes += m.length;
            self.held.push_back(m);
        } else {
            tally.dropped();
            self.drops.one(self.buffer);
        }
    }

    /// Runs `fut` (a handler's) while keeping the inbox filled whenever it waits.
    pub(crate) fn while_running<'a, F: Future>(
        &'a mut self,
        fut: F,
        tally: &'a Tally,
    ) -> WhileRunning<'a, F> {
        WhileRunning {
            fut,
            inbox: self,
            tally,
        }
    }
}

impl Drops {
    /// Logs the first drop at once, then at most every [`LOG_EVERY`], with the count since.
    #[cold]
    fn one(&mut self, buffer: Buffer) {
        self.unlogged += 1;
        let due = self.logged.is_none_or(|t| t.elapsed() >= LOG_EVERY);
        if due {
            tracing::warn!(
                handler = %self.handler,
                dropped = self.unlogged,
                %buffer,
                "handler buffer full: messages dropped (counted in its stats); raise `buffer`, add `concurrency` or instances, or use a JetStream consumer"
            );
            self.unlogged = 0;
            self.logged = Some(Instant::now());
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Inbox::while_running`].
    pub(crate) struct WhileRunning<'a, F> {
        #[pin]
        fut: F,
        inbox: &'a mut Inbox,
        tally: &'a Tally,
    }
}

impl<F: Future> Future for WhileRunning<'_, F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        match this.fut.poll(cx) {
            Poll::Ready(out) => Poll::Ready(out),
            Poll::Pending => {
                this.inbox.fill(cx, this.tally);
                Poll::Pending
            }
        }
    }
}
