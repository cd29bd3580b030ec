"""The dashboard: server-rendered pages whose scripts call the JSON API.

``pages.mount(app)`` adds the sign-in form, the pages and the static files
(Plotly.js comes from the installed ``plotly`` package: no CDN, works offline).
"""
