// Floor front worker. `/binding/*` forwards to the plugin behind a static service binding;
// `/loader/*` forwards to the same plugin code started with LOADER.get: `?id=` picks the loader
// id (a fixed id stays warm, a new id starts a new isolate: the cold floor).
import pluginSource from "plugin-source.txt";

function pluginCode() {
  return {
    compatibilityDate: "2025-11-01",
    mainModule: "plugin.js",
    modules: { "plugin.js": { js: pluginSource } },
    env: {},
    globalOutbound: null,
  };
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname.startsWith("/binding/")) return env.PLUGIN.fetch(request);
    if (url.pathname.startsWith("/loader/")) {
      const id = url.searchParams.get("id") ?? "warm";
      return env.LOADER.get(id, async () => pluginCode()).getEntrypoint().fetch(request);
    }
    return new Response("front\n");
  },
};
