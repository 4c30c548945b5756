//! The README's editor snippets, run in the editor: each Neovim snippet, in the Neovim on
//! this machine, attaches `otvi-codegen lsp` to a provider file (the 0.10 one only from
//! Neovim 0.10 on, as the README says) and not to a `docker-compose.yml`, and the server's
//! diagnostics reach the buffer. Needs `nvim` (Debian's `neovim` package: 0.7.2 on Debian 12).

use std::path::Path;
use std::process::Command;

/// The Lua blocks of the README's "Editor integration" section.
fn lua_snippets() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let start = readme.find("### Editor integration").expect("the section");
    let section = &readme[start..];
    let section = &section[..section[4..].find("\n### ").map_or(section.len(), |i| i + 4)];
    section
        .split("```lua\n")
        .skip(1)
        .map(|b| b[..b.find("```").expect("a closed block")].to_string())
        .collect()
}

/// `(major, minor)` of the `nvim` on `PATH`.
fn nvim_version() -> (u32, u32) {
    let out = Command::new("nvim")
        .arg("--version")
        .output()
        .expect("nvim is not installed (apt-get install neovim)");
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("NVIM v"))
        .unwrap_or_else(|| panic!("{text}"));
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Opens a provider file, breaks it, then opens a compose file; what Neovim saw.
const PROBE: &str = r#"
local function clients(buf)
  local n = 0
  local list = vim.lsp.get_clients and vim.lsp.get_clients({ bufnr = buf })
    or vim.lsp.buf_get_clients(buf)
  for _ in pairs(list) do n = n + 1 end
  return n
end
local out = {}
vim.cmd("edit " .. ROOT .. "/providers/acme.yaml")
local p = vim.api.nvim_get_current_buf()
vim.wait(20000, function() return clients(p) > 0 end, 50)
table.insert(out, "provider clients=" .. clients(p))
vim.api.nvim_buf_set_lines(p, 0, 0, false, { "bogus_top: 1" })
if clients(p) > 0 then
  vim.wait(20000, function() return #vim.diagnostic.get(p) > 0 end, 50)
end
table.insert(out, "provider diagnostics=" .. #vim.diagnostic.get(p))
vim.cmd("edit " .. ROOT .. "/docker-compose.yml")
local d = vim.api.nvim_get_current_buf()
vim.wait(1000, function() return false end, 50)
table.insert(out, "compose clients=" .. clients(d))
local f = io.open(ROOT .. "/result.txt", "w")
f:write(table.concat(out, "\n") .. "\n")
f:close()
vim.cmd("qa!")
"#;

#[test]
#[ignore = "needs nvim: apt-get install neovim"]
fn the_readme_neovim_snippets_attach_to_provider_files_only() {
    let snippets = lua_snippets();
    assert_eq!(snippets.len(), 2, "{snippets:#?}");
    let version = nvim_version();
    let bin = env!("CARGO_BIN_EXE_otvi-codegen");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../providers/acme.yaml");
    for (i, snippet) in snippets.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("providers")).unwrap();
        std::fs::copy(&shipped, root.join("providers/acme.yaml")).unwrap();
        std::fs::write(
            root.join("docker-compose.yml"),
            "services:\n  db:\n    image: postgres\n",
        )
        .unwrap();
        let init = snippet.replace(
            r#"cmd = { "otvi-codegen", "lsp" }"#,
            &format!(r#"cmd = {{ "{bin}", "lsp" }}"#),
        );
        assert_ne!(&init, snippet, "snippet {i} names no `otvi-codegen lsp`");
        std::fs::write(root.join("init.lua"), init).unwrap();
        let probe = format!("local ROOT = {:?}\n{PROBE}", root.display().to_string());
        std::fs::write(root.join("probe.lua"), probe).unwrap();
        let status = Command::new("timeout")
            .arg("120")
            .arg("nvim")
            .args(["--headless", "-u"])
            .arg(root.join("init.lua"))
            .arg("-c")
            .arg(format!("luafile {}", root.join("probe.lua").display()))
            .current_dir(root)
            .status()
            .unwrap();
        assert!(status.success(), "snippet {i}: nvim {status}");
        let seen = std::fs::read_to_string(root.join("result.txt")).unwrap();
        // The first snippet needs Neovim 0.10 (`vim.fs.root`, `vim.lsp.start`).
        let works = i == 1 || version >= (0, 10);
        let expected = if works {
            "provider clients=1\nprovider diagnostics=1\ncompose clients=0\n"
        } else {
            "provider clients=0\nprovider diagnostics=0\ncompose clients=0\n"
        };
        assert_eq!(seen, expected, "snippet {i} on nvim {version:?}");
    }
}
