//! What this server supports, derived from the code: every relation, expression and command
//! kind of the protocol (read from the descriptors the server is generated from) is put to
//! the planner and the command dispatcher, and whatever they refuse as unsupported is listed
//! as refused. `sluice connect --supported` prints it; the README holds a copy a test keeps
//! current.

use std::collections::BTreeSet;

use arrow::datatypes::SchemaRef;
use futures::future::BoxFuture;
use prost::Message;
use sluice_driver::batch::MemoryRelation;

use crate::error::{ConnectError, ExceptionClass, Result};
use crate::plan::relation::Planner;
use crate::plan::{PlanEnv, PlannedFrame};
use crate::proto::{Command, Expression, Relation};

const DESCRIPTORS: &[u8] = include_bytes!("../../proto/spark-connect-4.0.1.fds.bin");

/// One protocol element and whether the server takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Support {
    /// The protocol's field name (`with_watermark`, `unresolved_function`).
    pub name: String,
    /// `None` when supported; the refusal message otherwise.
    pub refused: Option<String>,
}

/// The fields of oneof `oneof` in message `spark.connect.<message>`, with their numbers.
fn oneof_fields(message: &str, oneof: &str) -> Vec<(String, i32)> {
    let Ok(fds) = prost_types::FileDescriptorSet::decode(DESCRIPTORS) else { return Vec::new() };
    for file in fds.file.iter().filter(|f| f.package() == "spark.connect") {
        if let Some(m) = file.message_type.iter().find(|m| m.name() == message) {
            let Some(index) = m.oneof_decl.iter().position(|o| o.name() == oneof) else { return Vec::new() };
            return m
                .field
                .iter()
                .filter(|f| f.oneof_index == Some(index as i32))
                .map(|f| (f.name().to_string(), f.number()))
                .collect();
        }
    }
    Vec::new()
}

/// A message whose oneof is set to field `number` with an empty value.
fn with_empty_field<M: Message + Default>(number: i32) -> Option<M> {
    let mut bytes = Vec::new();
    prost::encoding::encode_key(number as u32, prost::encoding::WireType::LengthDelimited, &mut bytes);
    prost::encoding::encode_varint(0, &mut bytes);
    M::decode(bytes.as_slice()).ok()
}

fn classify(result: Result<()>) -> Option<String> {
    match result {
        Err(e) if e.class == ExceptionClass::UnsupportedOperation => Some(e.message),
        _ => None,
    }
}

/// A session with nothing in it, whose schemas are unknown.
struct EmptyEnv;

impl PlanEnv for EmptyEnv {
    fn temp_view(&self, _name: &str) -> Option<Relation> {
        None
    }
    fn memory_relation(&self, _name: &str) -> Option<MemoryRelation> {
        None
    }
    fn table(&self, _name: &str) -> Option<(String, SchemaRef)> {
        None
    }
    fn schema<'a>(&'a self, _frame: &'a PlannedFrame) -> BoxFuture<'a, Result<SchemaRef>> {
        Box::pin(async { Err(ConnectError::invalid_plan("no schema while listing what is supported")) })
    }
}

/// Relation kinds: planned, or answered at the root (`show`).
pub async fn relations() -> Vec<Support> {
    let mut out = Vec::new();
    for (name, number) in oneof_fields("Relation", "rel_type") {
        let refused = match with_empty_field::<Relation>(number) {
            Some(rel) if crate::execute::answered_at_root(&rel) => None,
            Some(rel) => classify(Planner::new(&EmptyEnv).plan(&rel).await.map(|_| ())),
            None => Some("cannot be decoded".into()),
        };
        out.push(Support { name, refused });
    }
    out
}

/// Expression kinds.
pub fn expressions() -> Vec<Support> {
    oneof_fields("Expression", "expr_type")
        .into_iter()
        .map(|(name, number)| {
            let refused = match with_empty_field::<Expression>(number) {
                Some(e) => classify(crate::plan::expr::to_sql(&e, &crate::plan::expr::NoScope).map(|_| ())),
                None => Some("cannot be decoded".into()),
            };
            Support { name, refused }
        })
        .collect()
}

/// Command kinds.
pub fn commands() -> Vec<Support> {
    oneof_fields("Command", "command_type")
        .into_iter()
        .map(|(name, number)| {
            let refused = match with_empty_field::<Command>(number).and_then(|c| c.command_type) {
                Some(c) => crate::service::refused_command(&c).map(|e| e.message),
                None => Some("cannot be decoded".into()),
            };
            Support { name, refused }
        })
        .collect()
}

/// Functions a client may call by name: every function of sluice's SQL (DataFusion's and
/// sluice's Spark functions), plus the operators PySpark sends as functions.
pub fn functions() -> (Vec<String>, Vec<String>) {
    let state = sluice_plan::base_session_state();
    let mut names: BTreeSet<String> = state.scalar_functions().keys().cloned().collect();
    names.extend(state.aggregate_functions().keys().cloned());
    let operators = crate::plan::expr::OPERATORS.iter().map(|s| s.to_string()).collect();
    (names.into_iter().collect(), operators)
}

/// The whole report, as the README shows it.
pub async fn markdown() -> String {
    let mut s = String::new();
    let section = |s: &mut String, title: &str, items: &[Support]| {
        let ok: Vec<&str> = items.iter().filter(|i| i.refused.is_none()).map(|i| i.name.as_str()).collect();
        s.push_str(&format!(
            "**{title}** ({} of {}): {}\n\n",
            ok.len(),
            items.len(),
            ok.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
        ));
        let refused: Vec<String> = items.iter().filter(|i| i.refused.is_some()).map(|i| format!("`{}`", i.name)).collect();
        if !refused.is_empty() {
            s.push_str(&format!("Refused with `UNSUPPORTED_FEATURE`: {}\n\n", refused.join(", ")));
        }
    };
    section(&mut s, "Relations", &relations().await);
    section(&mut s, "Expressions", &expressions());
    section(&mut s, "Commands", &commands());
    let (functions, operators) = functions();
    s.push_str(&format!(
        "**Functions** ({}): every function of sluice's SQL, by name — {}\n\n",
        functions.len(),
        functions.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
    ));
    s.push_str(&format!("**Operators**: {}\n", operators.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_tutorials_operations_are_supported_and_the_rest_refused_by_name() {
        let relations = relations().await;
        let supported = |name: &str| relations.iter().any(|r| r.name == name && r.refused.is_none());
        for name in [
            "read",
            "project",
            "filter",
            "join",
            "set_op",
            "aggregate",
            "sql",
            "deduplicate",
            "subquery_alias",
            "with_columns_renamed",
            "drop",
            "with_columns",
            "with_watermark",
            "show_string",
            "cached_remote_relation",
            "sort",
            "limit",
        ] {
            assert!(supported(name), "{name} should be supported: {relations:?}");
        }
        for refused in ["map_partitions", "apply_in_pandas_with_state", "sample"] {
            let r = relations.iter().find(|r| r.name == refused).expect("in the protocol");
            assert!(r.refused.as_deref().is_some_and(|m| m.contains("UNSUPPORTED_FEATURE")), "{r:?}");
        }
        let commands = commands();
        for name in ["write_stream_operation_start", "streaming_query_command", "streaming_query_manager_command", "sql_command"]
        {
            assert!(commands.iter().any(|c| c.name == name && c.refused.is_none()), "{name}: {commands:?}");
        }
        assert!(commands.iter().any(|c| c.name == "register_function" && c.refused.is_some()));
        let (functions, _) = functions();
        for f in ["window", "session_window", "from_json", "to_timestamp", "count", "approx_count_distinct", "first", "last"] {
            assert!(functions.iter().any(|n| n == f), "{f} missing from {functions:?}");
        }
    }

    #[tokio::test]
    async fn the_readme_lists_what_the_server_supports() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
        let (begin, end) = ("<!-- spark-connect-support:begin -->", "<!-- spark-connect-support:end -->");
        let start = readme.find(begin).expect("README marker") + begin.len();
        let stop = readme.find(end).expect("README marker");
        assert_eq!(
            readme[start..stop].trim(),
            markdown().await.trim(),
            "README.md's list is out of date: put the output of `sluice connect --supported` between its markers"
        );
    }
}
