//! How much work world-service asks of its store: commands by kind, counted where they are
//! issued, for `world_store_commands_total{command}` and for tests and benchmarks that show a
//! cost per request or per interval.
//!
//! - MongoDB: every command the driver starts (its command monitoring events), by command name:
//!   `insert`, `find`, `update`, `delete`, `aggregate`, … Names outside [`MONGODB_COMMANDS`] count
//!   as `other`, so the label stays bounded whatever a driver upgrade sends.
//! - Embedded: each write transaction the writer commits (`commit`: not yet synced; `synced_commit`:
//!   made durable at once, which syncs every commit before it too) and each read transaction a
//!   waiting reads' check opens (`read`). A lease's read transaction is not counted: it is the
//!   request's own work, like a lookup in the page cache.

use prometheus::{IntCounterVec, Opts};

/// The MongoDB command names counted by name; anything else is `other`.
pub const MONGODB_COMMANDS: &[&str] = &[
    "insert",
    "find",
    "update",
    "delete",
    "aggregate",
    "count",
    "findAndModify",
    "getMore",
    "killCursors",
    "createIndexes",
    "ping",
    "endSessions",
];

/// The embedded store's kinds of work.
pub const EMBEDDED_COMMANDS: &[&str] = &["commit", "synced_commit", "read"];

/// Counters of store commands, one per command name. Cloning shares the counts.
#[derive(Debug, Clone)]
pub struct StoreCommands {
    counter: IntCounterVec,
}

impl StoreCommands {
    /// Counters for a store whose commands are named in `names` (every name starts at 0, so
    /// dashboards see a rate from the first command on).
    fn with_names(names: &[&str]) -> Self {
        let counter = IntCounterVec::new(
            Opts::new(
                "store_commands_total",
                "Commands world-service issued to its store, by command (MongoDB: the driver's \
                 commands; embedded: write transactions committed, synced or not, and reads of \
                 the waiting reads' check)",
            ),
            &["command"],
        )
        .expect("a fixed, valid metric definition");
        for name in names {
            counter.with_label_values(&[name]);
        }
        Self { counter }
    }

    /// Counters for the MongoDB backend.
    pub fn mongodb() -> Self {
        let mut names = MONGODB_COMMANDS.to_vec();
        names.push("other");
        Self::with_names(&names)
    }

    /// Counters for the embedded backend.
    pub fn embedded() -> Self {
        Self::with_names(EMBEDDED_COMMANDS)
    }

    /// Counts one MongoDB command by its name.
    pub fn count_mongodb(&self, command_name: &str) {
        let name = MONGODB_COMMANDS
            .iter()
            .find(|known| **known == command_name)
            .copied()
            .unwrap_or("other");
        self.counter.with_label_values(&[name]).inc();
    }

    /// Counts one unit of the embedded store's work (one of [`EMBEDDED_COMMANDS`]).
    pub fn count(&self, command: &'static str) {
        debug_assert!(EMBEDDED_COMMANDS.contains(&command), "{command}");
        self.counter.with_label_values(&[command]).inc();
    }

    /// How many commands were counted, of every kind.
    pub fn total(&self) -> u64 {
        self.by_command().into_iter().map(|(_, count)| count).sum()
    }

    /// The count of each command, in name order.
    pub fn by_command(&self) -> Vec<(String, u64)> {
        use prometheus::core::Collector;
        let mut counts: Vec<(String, u64)> = self
            .counter
            .collect()
            .into_iter()
            .flat_map(|family| family.get_metric().to_vec())
            .map(|metric| {
                let name = metric
                    .get_label()
                    .first()
                    .map(|label| label.value().to_owned())
                    .unwrap_or_default();
                (name, metric.get_counter().get_value() as u64)
            })
            .collect();
        counts.sort();
        counts
    }

    /// The counters, to register in the service's registry.
    pub fn collector(&self) -> Box<dyn prometheus::core::Collector> {
        Box::new(self.counter.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::StoreCommands;

    #[test]
    fn unknown_mongodb_commands_count_as_other_and_every_name_starts_at_zero() {
        let commands = StoreCommands::mongodb();
        assert_eq!(commands.total(), 0);
        commands.count_mongodb("insert");
        commands.count_mongodb("insert");
        commands.count_mongodb("dropDatabase");
        let counts = commands.by_command();
        assert!(counts.contains(&("insert".into(), 2)), "{counts:?}");
        assert!(counts.contains(&("other".into(), 1)), "{counts:?}");
        assert!(counts.contains(&("find".into(), 0)), "{counts:?}");
        assert_eq!(commands.total(), 3);
    }
}
