//! `hookfleet event-type`: the event type catalog.
use super::{json_arg, pool, print_json};
use hookfleet_core::Settings;
use hookfleet_service::{catalog, Ctx};

#[derive(clap::Subcommand)]
pub enum EventTypeCmd {
    /// List the catalog.
    List,
    /// Add an event type.
    Add {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// JSON Schema of `data` (JSON text, or @file).
        #[arg(long)]
        schema: Option<String>,
        /// An example `data` (JSON text, or @file); must match the schema.
        #[arg(long)]
        example: Option<String>,
        /// Its own retry schedule: delays between attempts, comma separated (e.g. 5s,1m,1h).
        #[arg(long, value_delimiter = ',')]
        retry_schedule: Option<Vec<String>>,
    },
    /// Deprecate an event type: events of it are refused from now on.
    Deprecate { name: String },
}

pub async fn run(cmd: EventTypeCmd, settings: &Settings) -> anyhow::Result<()> {
    let pool = pool(settings)?;
    match cmd {
        EventTypeCmd::List => {
            for t in hookfleet_store::catalog::list(&pool).await? {
                out!(
                    "{}{}  {}",
                    t.name,
                    if t.deprecated { " (deprecated)" } else { "" },
                    t.description
                );
            }
            Ok(())
        }
        EventTypeCmd::Add {
            name,
            description,
            schema,
            example,
            retry_schedule,
        } => {
            let b = catalog::NewEventType {
                name,
                description,
                schema: json_arg("--schema", schema)?,
                example: json_arg("--example", example)?,
                retry_schedule,
            };
            let t = catalog::add_event_type(Ctx::standalone(settings, &pool), b).await?;
            print_json(&t)
        }
        EventTypeCmd::Deprecate { name } => {
            let p = catalog::EventTypePatch {
                deprecated: Some(true),
                ..Default::default()
            };
            catalog::update_event_type(Ctx::standalone(settings, &pool), &name, p).await?;
            out!("{name} deprecated");
            Ok(())
        }
    }
}
