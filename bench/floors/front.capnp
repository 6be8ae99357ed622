# Floors: a front worker with (a) a static service binding to the plugin and (b) a bare
# Worker Loader binding loading the same plugin code. Needs `workerd serve --experimental`.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "front", worker = .front),
    (name = "plugin", worker = .plugin),
  ],
  sockets = [(name = "http", address = "127.0.0.1:0", http = (), service = "front")],
);

const front :Workerd.Worker = (
  modules = [
    (name = "front.js", esModule = embed "front.js"),
    (name = "plugin-source.txt", text = embed "plugin.js"),
  ],
  compatibilityDate = "2025-11-01",
  bindings = [
    (name = "PLUGIN", service = "plugin"),
    (name = "LOADER", workerLoader = ()),
  ],
);

const plugin :Workerd.Worker = (
  modules = [(name = "plugin.js", esModule = embed "plugin.js")],
  compatibilityDate = "2025-11-01",
);
