// Starts Swagger UI on /docs. A file rather than an inline script, so the page needs no exception in its
// Content-Security-Policy. The page names the OpenAPI document in data-openapi-url (it knows the root path).
"use strict";

const root = document.getElementById("swagger-ui");

window.ui = SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  // No online validator: it would send the document to another host.
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
