//! What a pooled session learns from the server's answers as they go by: ReadyForQuery
//! moves the protocol [`Flow`] and counts a query (and a transaction when the server is
//! idle again) with its latency, ErrorResponse counts an error by SQLSTATE class, and
//! ParameterStatus is handed back to the caller. Counters are the listener's atomics.

use std::time::Instant;

use super::frontend::Flow;
use crate::protocol::frame::Seen;
use crate::protocol::io::parse_parameter_status;
use crate::stats::ListenerStats;

/// When the oldest request the server has not answered with ReadyForQuery was sent.
#[derive(Debug, Default)]
pub struct QueryClock(Option<Instant>);

impl QueryClock {
    /// The client's bytes went to the server; starts the clock if a reply is now owed.
    pub fn sent(&mut self, flow: Flow) {
        if self.0.is_none() && flow.pending > 0 {
            self.0 = Some(Instant::now());
        }
    }

    /// A ReadyForQuery arrived (`flow` already updated).
    fn answered(&mut self, flow: Flow, stats: &ListenerStats) {
        stats.queries.inc();
        if flow.status == b'I' {
            stats.transactions.inc();
        }
        if let Some(sent) = self.0.take() {
            let now = Instant::now();
            stats.query_time.record(now - sent);
            // Pipelined requests: the next one has been waiting since at least now.
            if flow.pending > 0 {
                self.0 = Some(now);
            }
        }
    }
}

/// Applies the messages the backend parser collected; `param` gets each ParameterStatus.
pub fn absorb(
    seen: &[Seen],
    flow: &mut Flow,
    clock: &mut QueryClock,
    stats: &ListenerStats,
    mut param: impl FnMut(String, String),
) {
    for s in seen {
        match s.tag {
            b'Z' => {
                flow.pending = flow.pending.saturating_sub(1);
                flow.status = s.body.first().copied().unwrap_or(b'I');
                clock.answered(*flow, stats);
            }
            b'E' => stats.errors.record_response(&s.body),
            _ => {
                if let Some((k, v)) = parse_parameter_status(&s.body) {
                    param(k, v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(tag: u8, body: &[u8]) -> Seen {
        Seen {
            tag,
            body: body.to_vec(),
        }
    }

    #[test]
    fn ready_for_query_counts_queries_transactions_and_latency() {
        let stats = ListenerStats::default();
        let mut flow = Flow::default();
        let mut clock = QueryClock::default();
        flow.pending = 2;
        clock.sent(flow);
        let mut params = Vec::new();
        let msgs = [
            seen(b'Z', b"T"),
            seen(b'E', b"SERROR\0C23505\0Mduplicate\0\0"),
            seen(b'S', b"application_name\0x\0"),
            seen(b'Z', b"I"),
        ];
        absorb(&msgs, &mut flow, &mut clock, &stats, |k, v| {
            params.push((k, v));
        });
        assert_eq!((stats.queries.get(), stats.transactions.get()), (2, 1));
        assert_eq!(stats.query_time.snapshot().count, 2);
        assert_eq!(stats.errors.nonzero(), [("23", 1)]);
        assert_eq!(params, [("application_name".to_owned(), "x".to_owned())]);
        assert_eq!((flow.pending, flow.status), (0, b'I'));
    }
}
