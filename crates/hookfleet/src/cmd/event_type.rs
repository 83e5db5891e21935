//! `hookfleet event-type`: the event type catalog.
use super::{api_error, json_arg, pool, print_json};
use hookfleet_core::Settings;

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
            let b = hookfleet_api::events::NewEventType {
                name,
                description,
                schema: json_arg("--schema", schema)?,
                example: json_arg("--example", example)?,
                retry_schedule,
            };
            let t = hookfleet_api::events::add_event_type(settings, &pool, None, b)
                .await
                .map_err(api_error)?;
            print_json(&t)
        }
        EventTypeCmd::Deprecate { name } => {
            let p = hookfleet_api::events::EventTypePatch {
                deprecated: Some(true),
                ..Default::default()
            };
            hookfleet_api::events::update_event_type(settings, &pool, None, &name, p)
                .await
                .map_err(api_error)?;
            out!("{name} deprecated");
            Ok(())
        }
    }
}
