// GraphiQL on GET /graphql (development profile): queries over HTTP,
// subscriptions over the GraphQL WebSocket of the same origin. The console's
// token (if signed in there) is offered as the Authorization header.
(function () {
  const ws = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/graphql/ws";
  const token = sessionStorage.getItem("shopstream.token");
  const fetcher = GraphiQL.createFetcher({ url: "/graphql", subscriptionUrl: ws });
  const headers = token ? JSON.stringify({ Authorization: "Bearer " + token }, null, 2) : undefined;
  const root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQL, {
    fetcher: fetcher,
    defaultHeaders: headers,
    defaultEditorToolsVisibility: headers ? "headers" : false,
  }));
})();
