//! `iotsafe readers`: the PC/SC readers and whether each holds a card.

use crate::context::Context;
use crate::output::Output;
use iotsafe_cli::CliError;

/// Lists the readers.
#[cfg(feature = "pcsc")]
pub fn run(_context: &Context) -> Result<Output, CliError> {
    use serde_json::json;
    let ctx = pcsc::Context::establish(pcsc::Scope::User).map_err(|e| {
        CliError::new("connecting to the PC/SC service", e)
            .hint("start pcscd (`pcscd --foreground &`)")
    })?;
    let names = match ctx.list_readers_owned() {
        Ok(names) => names,
        Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
        Err(e) => return Err(CliError::new("listing PC/SC readers", e)),
    };
    let mut states: Vec<pcsc::ReaderState> = names
        .iter()
        .map(|n| pcsc::ReaderState::new(n.clone(), pcsc::State::UNAWARE))
        .collect();
    let _ = ctx.get_status_change(std::time::Duration::from_millis(0), &mut states);
    let mut text = String::new();
    let mut list = Vec::new();
    for (name, state) in names.iter().zip(&states) {
        let present = state.event_state().contains(pcsc::State::PRESENT);
        let name = name.to_string_lossy().into_owned();
        text.push_str(&format!(
            "{name}\t{}\n",
            if present { "card present" } else { "no card" }
        ));
        list.push(json!({ "name": name, "card_present": present }));
    }
    if list.is_empty() {
        text.push_str("no PC/SC readers\n");
    }
    Ok(Output::new(text, json!({ "readers": list })))
}

/// Without PC/SC support there is nothing to list.
#[cfg(not(feature = "pcsc"))]
pub fn run(_context: &Context) -> Result<Output, CliError> {
    Err(
        CliError::new("listing PC/SC readers", "this build has no PC/SC support")
            .hint("rebuild with `--features pcsc` (needs libpcsclite-dev)"),
    )
}
