//! What a job file declares: streams, static tables, views, sinks and the queries between them.
//!
//! A job file is read top to bottom: `CREATE …` statements add to one catalog shared by every
//! query, `SET` changes the settings seen by the `INSERT INTO` statements *after* it, and each
//! `INSERT INTO` becomes one streaming query. This module holds that structure and the rule that
//! builds it from parsed statements; it does no I/O and knows nothing about connectors.

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::ast::Query;
use sluice_common::error::{Result, SluiceError};
use sluice_common::options::Options;
use sluice_common::redact::Redactor;

use super::statement::{ParsedStatement, RelationDef, SinkDef, StatementKind};

/// One `INSERT INTO` with the settings in force where it appears.
#[derive(Debug, Clone)]
pub struct QueryDef {
    /// Target sink name.
    pub sink: String,
    /// The SELECT as the user wrote it.
    pub select_sql: String,
    /// Parsed SELECT.
    pub query: Box<Query>,
    /// `SET`s seen before this statement.
    pub settings: Options,
    /// Line of the `INSERT`, for messages.
    pub line: u64,
}

/// The catalog and queries of one job file.
#[derive(Debug, Clone, Default)]
pub struct JobFile {
    /// `CREATE STREAM`s by name: the unbounded inputs.
    pub streams: BTreeMap<String, RelationDef>,
    /// `CREATE TABLE`s by name: static inputs, re-read every micro-batch.
    pub tables: BTreeMap<String, RelationDef>,
    /// Views in declaration order (a view may use an earlier one).
    pub views: Vec<(String, String)>,
    /// `CREATE SINK`s by name.
    pub sinks: BTreeMap<String, SinkDef>,
    /// One per `INSERT INTO`, in file order; each runs as its own streaming query.
    pub queries: Vec<QueryDef>,
}

impl JobFile {
    /// Builds the job from statements, checking names are unique and sinks exist.
    pub fn from_statements(statements: Vec<ParsedStatement>) -> Result<Self> {
        let mut job = JobFile::default();
        let mut settings = Options::new();
        let mut names: BTreeMap<String, u64> = BTreeMap::new();
        let mut claim = |name: &str, line: u64| -> Result<()> {
            if let Some(prev) = names.insert(name.to_string(), line) {
                return Err(SluiceError::user(format!("line {line}: '{name}' is already defined on line {prev}")));
            }
            Ok(())
        };
        for st in statements {
            match st.kind {
                StatementKind::CreateStream(r) => {
                    claim(&r.name, st.line)?;
                    job.streams.insert(r.name.clone(), r);
                }
                StatementKind::CreateTable(r) => {
                    claim(&r.name, st.line)?;
                    job.tables.insert(r.name.clone(), r);
                }
                StatementKind::CreateView { name, query } => {
                    claim(&name, st.line)?;
                    job.views.push((name, query.to_string()));
                }
                StatementKind::CreateSink(s) => {
                    claim(&s.name, st.line)?;
                    job.sinks.insert(s.name.clone(), s);
                }
                StatementKind::Set { key, value } => settings.insert(key, value),
                StatementKind::Insert { sink, query } => {
                    let select_sql = query.to_string();
                    job.queries.push(QueryDef { sink, select_sql, query, settings: settings.clone(), line: st.line });
                }
            }
        }
        for q in &job.queries {
            if !job.sinks.contains_key(&q.sink) {
                return Err(SluiceError::user(format!(
                    "line {}: INSERT INTO '{}': no sink of that name; declare it with CREATE SINK {} WITH (...)",
                    q.line, q.sink, q.sink
                )));
            }
        }
        if job.queries.is_empty() {
            return Err(SluiceError::user("the job file has no INSERT INTO statement, so there is nothing to run"));
        }
        Ok(job)
    }

    /// The secret values of every option and setting in the job, to scrub from the errors of
    /// resolving its queries ([`sluice_common::redact`]).
    pub fn redactor(&self) -> Redactor {
        let mut r = Redactor::new();
        for def in self.streams.values().chain(self.tables.values()) {
            r.add_options(&def.options);
        }
        for sink in self.sinks.values() {
            r.add_options(&sink.options);
        }
        for q in &self.queries {
            r.add_options(&q.settings);
        }
        r
    }

    /// Parses and builds a job file in one step.
    pub fn parse(origin: &str, text: &str) -> Result<Self> {
        Self::from_statements(super::parser::parse_job(origin, text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_apply_to_later_inserts_only() {
        let job = JobFile::parse(
            "j",
            "CREATE SINK a WITH ('connector'='console');
             INSERT INTO a SELECT 1;
             SET 'outputMode' = 'update';
             INSERT INTO a SELECT 2;",
        )
        .unwrap();
        assert_eq!(job.queries[0].settings.get("outputMode"), None);
        assert_eq!(job.queries[1].settings.get("outputmode"), Some("update"));
    }

    #[test]
    fn unknown_sink_and_duplicates_are_user_errors() {
        let e = JobFile::parse("j", "INSERT INTO nowhere SELECT 1").unwrap_err();
        assert!(e.message.contains("no sink of that name"));
        let e = JobFile::parse("j", "CREATE SINK a WITH ('connector'='console'); CREATE SINK a WITH ('connector'='console');")
            .unwrap_err();
        assert!(e.message.contains("already defined"));
    }
}
