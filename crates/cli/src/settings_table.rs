//! The settings table of docs/CONFIGURATION.md, rendered from `facerec serve`'s own flags: the text
//! `--help` shows is the text the docs show (a test holds the page to it).

use clap::ArgAction;

/// One Markdown row per flag of `serve` (the global ones included): the flag and its environment
/// variable, its default, and its long help on one line.
pub fn render(serve: &clap::Command) -> String {
    let mut out = String::from("| setting | default | what |\n|---|---|---|\n");
    for arg in serve.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if arg.is_hide_set() || matches!(arg.get_action(), ArgAction::Help | ArgAction::Version) {
            continue;
        }
        let mut setting = format!("`--{long}`");
        if let Some(env) = arg.get_env() {
            setting.push_str(&format!(" / `{}`", env.to_string_lossy()));
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let default = match (arg.get_action(), defaults.is_empty()) {
            (ArgAction::SetTrue, _) => "off".to_owned(),
            (_, true) => "—".to_owned(),
            (_, false) => format!("`{}`", defaults.join(",")),
        };
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let help = help
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace('|', "\\|");
        out.push_str(&format!("| {setting} | {default} | {help} |\n"));
    }
    out
}
