// /docs: Scalar's API reference over this server's own OpenAPI document.
// Scalar is vendored (web/vendor/PINNED); nothing is fetched from elsewhere.
Scalar.createApiReference("#app", {
  url: "/openapi.json",
  withDefaultFonts: false,
  telemetry: false,
  hideClientButton: true,
  persistAuth: false,
});
