// The benchmark plugin: the same code runs behind the gateway, a static service binding and a
// bare LOADER.get, so the three paths differ only in what sits in front of it.
export default {
  async fetch(request) {
    return new Response("hello from a plugin\n", { headers: { "content-type": "text/plain" } });
  },
};
