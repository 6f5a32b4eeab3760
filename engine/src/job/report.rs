//! The HTML report (`masclet report --html`).
