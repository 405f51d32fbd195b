//! The interactive shell (issue 6 grows it): one engine, one `Scope` and the script functions
//! defined so far, kept across entries, on the same pool scripts use.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use rhai::{Scope, AST};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::script::{self, Source};

pub fn start(config: Config, _history: Option<PathBuf>, _no_history: bool) -> Result<i32> {
    let interactive = std::io::stdin().is_terminal();
    let mut failed = false;
    crate::app::with_session(config, |session| {
        let engine = script::engine(session);
        let mut scope = Scope::new();
        scope.push_constant("ARGS", rhai::Dynamic::from_map(rhai::Map::new()));
        let mut functions = AST::empty();
        let stdin = std::io::stdin();
        let mut buffer = String::new();
        let mut lines = stdin.lock().lines();
        loop {
            if interactive {
                eprint!(
                    "{}",
                    if buffer.is_empty() {
                        "dsqlsh> "
                    } else {
                        "   ...> "
                    }
                );
            }
            let Some(Ok(line)) = lines.next() else { break };
            buffer.push_str(&line);
            buffer.push('\n');
            if buffer.trim().is_empty() {
                buffer.clear();
                continue;
            }
            let source = Source {
                name: "<repl>".into(),
                text: buffer.clone(),
                dir: None,
            };
            let ast = match engine.compile_with_scope(&scope, &buffer) {
                Ok(ast) => ast,
                Err(e) if is_incomplete(&e) => continue,
                Err(e) => {
                    eprintln!("error: {}", script::report::render_parse(&e, &source));
                    failed = true;
                    buffer.clear();
                    continue;
                }
            };
            buffer.clear();
            functions = functions.merge(&ast.clone_functions_only());
            let ast = functions.merge(&ast);
            crate::runtime::reset_interrupt();
            match script::eval(session, &engine, &mut scope, &ast, &source) {
                Ok(v) if !v.is_unit() => {
                    crate::output::line(&crate::output::display_value(&v));
                }
                Ok(_) => {}
                Err(Error::Exit(_)) => break,
                Err(e) => {
                    eprintln!("error: {e}");
                    failed = true;
                }
            }
        }
        Ok(())
    })?;
    Ok(if failed { 1 } else { 0 })
}

fn is_incomplete(e: &rhai::ParseError) -> bool {
    use rhai::ParseErrorType as P;
    matches!(e.err_type(), P::MissingToken(..) | P::UnexpectedEOF)
        || matches!(
            e.err_type(),
            P::BadInput(rhai::LexError::UnterminatedString)
        )
}
