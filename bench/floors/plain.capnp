# Floor: one plain worker answering every request (no binding, no loader).
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [(name = "plain", worker = .plain)],
  sockets = [(name = "http", address = "127.0.0.1:0", http = (), service = "plain")],
);

const plain :Workerd.Worker = (
  modules = [(name = "plugin.js", esModule = embed "plugin.js")],
  compatibilityDate = "2025-11-01",
);
