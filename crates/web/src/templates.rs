//! Server-rendered pages with minijinja; templates are compiled into the binary and
//! auto-escaped (they end in `.html`).

use minijinja::Environment;

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        for (name, source) in [
            ("base.html", include_str!("../templates/base.html")),
            ("macros.html", include_str!("../templates/macros.html")),
            ("home.html", include_str!("../templates/home.html")),
            ("finder.html", include_str!("../templates/finder.html")),
            (
                "authority.html",
                include_str!("../templates/authority.html"),
            ),
            ("legal.html", include_str!("../templates/legal.html")),
            ("error.html", include_str!("../templates/error.html")),
        ] {
            // The templates are part of the program: one that does not compile is a bug the
            // tests catch, so the panic here cannot come from input.
            if let Err(e) = env.add_template(name, source) {
                panic!("template {name} does not compile: {e}");
            }
        }
        Templates { env }
    }

    pub fn render(&self, name: &str, ctx: minijinja::Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}
