//! When each message should be sent, and what its latency is measured from.
//!
//! Open loop (a target rate): message `i` of a sender is *scheduled* at
//! `start + i / rate`, whatever happened before. If the sender or the broker
//! stalls, later messages go out late — and their latency is measured from
//! when they *should* have gone out, so the stall shows in the percentiles
//! instead of vanishing (coordinated omission, as Gil Tene named it).
//!
//! Closed loop (unlimited rate): each message is sent as soon as the sender
//! can, and latency is measured from that moment.

use std::time::{Duration, Instant};

/// The send schedule of one sender.
#[derive(Clone, Debug)]
pub struct Schedule {
    start: Instant,
    /// Time between messages; `None` = as fast as possible.
    interval: Option<Duration>,
    sent: u64,
}

impl Schedule {
    /// `rate`: messages per second for this sender; `None` for unlimited.
    pub fn new(start: Instant, rate: Option<f64>) -> Schedule {
        let interval = rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(1.0 / r));
        Schedule {
            start,
            interval,
            sent: 0,
        }
    }

    pub fn is_open_loop(&self) -> bool {
        self.interval.is_some()
    }

    /// When the next message is due (`None` in closed loop: now).
    pub fn next_due(&self) -> Option<Instant> {
        self.interval
            .map(|i| self.start + i.mul_f64(self.sent as f64))
    }

    /// Takes the next message's slot and returns the instant its latency is
    /// measured from: its scheduled time in open loop, `now` in closed loop.
    pub fn take(&mut self, now: Instant) -> Instant {
        let due = self.next_due().unwrap_or(now);
        self.sent += 1;
        due
    }

    /// Messages taken so far.
    pub fn taken(&self) -> u64 {
        self.sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::Histogram;

    /// Simulates a sender whose sends each take `service`, except one that
    /// stalls for `stall`, and returns the latency histograms measured
    /// open-loop (from the schedule) and naively (from the actual send).
    fn simulate(
        rate: f64,
        messages: u64,
        service: Duration,
        stall_at: u64,
        stall: Duration,
    ) -> (Histogram<u64>, Histogram<u64>) {
        let start = Instant::now();
        let mut schedule = Schedule::new(start, Some(rate));
        let mut open = Histogram::<u64>::new(3).unwrap();
        let mut naive = Histogram::<u64>::new(3).unwrap();
        // A virtual clock: the sender is free at `free`.
        let mut free = start;
        for i in 0..messages {
            let due = schedule.next_due().unwrap();
            let sent_at = due.max(free);
            let measured_from = schedule.take(sent_at);
            let took = if i == stall_at { stall } else { service };
            let done = sent_at + took;
            free = done;
            open.record((done - measured_from).as_micros() as u64)
                .unwrap();
            naive.record((done - sent_at).as_micros() as u64).unwrap();
        }
        (open, naive)
    }

    #[test]
    fn a_stall_shows_in_the_high_percentiles_of_open_loop_latency() {
        // 1000 msg/s for 10 s; each send takes 100 µs; one stalls for 1 s.
        let (open, naive) = simulate(
            1000.0,
            10_000,
            Duration::from_micros(100),
            5000,
            Duration::from_secs(1),
        );
        // The naive measurement hides the stall behind one sample…
        assert!(
            naive.value_at_quantile(0.99) < 200,
            "naive p99 {}",
            naive.value_at_quantile(0.99)
        );
        // …while every message scheduled during the stall waited for it:
        // about a thousand of them, so p99 and p99.9 show it.
        assert!(
            open.value_at_quantile(0.99) > 500_000,
            "open-loop p99 {}",
            open.value_at_quantile(0.99)
        );
        assert!(open.value_at_quantile(0.999) > 900_000);
        assert_eq!(
            open.value_at_quantile(0.5),
            naive.value_at_quantile(0.5),
            "the median is unaffected"
        );
    }

    #[test]
    fn without_a_stall_both_measurements_agree() {
        let (open, naive) = simulate(
            1000.0,
            5000,
            Duration::from_micros(100),
            u64::MAX,
            Duration::ZERO,
        );
        assert_eq!(open.max(), naive.max());
    }

    #[test]
    fn the_schedule_is_evenly_spaced_and_unlimited_rate_is_closed_loop() {
        let start = Instant::now();
        let mut s = Schedule::new(start, Some(200.0));
        assert!(s.is_open_loop());
        assert_eq!(s.take(start), start);
        assert_eq!(s.take(start), start + Duration::from_millis(5));
        assert_eq!(s.next_due(), Some(start + Duration::from_millis(10)));
        let mut closed = Schedule::new(start, None);
        let later = start + Duration::from_secs(3);
        assert_eq!(closed.next_due(), None);
        assert_eq!(closed.take(later), later);
        assert_eq!(closed.taken(), 1);
    }
}
