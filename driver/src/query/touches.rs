//! What a job touches — its queries' sources, static tables, sinks and checkpoints — as
//! [`Touch`]es for the job policy (`crate::job::policy`). The connectors describe their own
//! declarations from the resolved options, with the parsing they run with; the checkpoint
//! location is made absolute as the checkpoint store makes it.

use sluice_common::error::Result;
use sluice_common::storage;
use sluice_connectors::{Access, Connectors, LocationUse};

use crate::job::{QueryDef, RelationDef, Touch};

use super::resolve::ResolvedQuery;

/// What a static table touches, from its declaration. Checked before the table is resolved:
/// resolving may read it (a Parquet table's schema).
pub fn table_touches(def: &RelationDef, connectors: &Connectors) -> Result<Vec<Touch>> {
    // Without a connector there is nothing to ask; resolving reports it before reading anything.
    let Some(connector) = def.options.get("connector") else { return Ok(Vec::new()) };
    let owner = format!("table '{}'", def.name);
    let access = connectors
        .table(&connector.to_ascii_lowercase())
        .and_then(|c| c.access(&def.options))
        .map_err(|e| e.context(owner.clone()))?;
    Ok(owned(&owner, access).collect())
}

/// What the query `def` resolved to (`resolved`) touches: sources in plan order, then static
/// tables, the sink and the checkpoint.
pub fn query_touches(def: &QueryDef, resolved: &ResolvedQuery, connectors: &Connectors) -> Result<Vec<Touch>> {
    let spec = &resolved.spec;
    let mut out = Vec::new();
    for s in &spec.sources {
        let owner = format!("source '{}'", s.source.name);
        let access = connectors
            .source(&s.source.connector)
            .and_then(|c| c.access(&s.source.options))
            .map_err(|e| e.context(owner.clone()))?;
        out.extend(owned(&owner, access));
    }
    for t in &spec.tables {
        let owner = format!("table '{}'", t.name);
        let access = connectors.table(&t.connector).and_then(|c| c.access(&t.options)).map_err(|e| e.context(owner.clone()))?;
        out.extend(owned(&owner, access));
    }
    let owner = format!("sink '{}'", spec.sink.name);
    let access =
        connectors.sink(&spec.sink.connector).and_then(|c| c.access(&spec.sink.options)).map_err(|e| e.context(owner.clone()))?;
    out.extend(owned(&owner, access));
    if let Some(location) = &resolved.checkpoint_location {
        // `checkpointLocation` wins over the root `spark.sql.streaming.checkpointLocation`.
        let setting = if def.settings.contains("checkpointLocation") {
            "checkpointLocation"
        } else {
            "spark.sql.streaming.checkpointLocation"
        };
        let owner = match &spec.name {
            Some(name) => format!("query '{name}'"),
            None => format!("the query writing to sink '{}'", spec.sink.name),
        };
        let url = storage::absolute_url(location).map_err(|e| e.context(setting))?;
        out.push(Touch { owner, access: Access::location(LocationUse::Checkpoint, setting, url.to_string()) });
    }
    Ok(out)
}

fn owned(owner: &str, access: Vec<Access>) -> impl Iterator<Item = Touch> + '_ {
    access.into_iter().map(move |access| Touch { owner: owner.to_string(), access })
}
