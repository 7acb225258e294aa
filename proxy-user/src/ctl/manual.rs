//! `rampart completions SHELL` and `rampart man`: generated from the clap
//! grammar, so they never drift from it.

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::Cli;

pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "rampart", &mut std::io::stdout());
    Ok(())
}

/// The man page, rampart(8): options, every object with its summary, the
/// examples of `--help`.
pub fn man() -> Result<()> {
    let cmd = Cli::command();
    clap_mangen::Man::new(cmd)
        .section("8")
        .render(&mut std::io::stdout())?;
    Ok(())
}
