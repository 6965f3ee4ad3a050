"""The Gradio app, one module per tab; the repository's app.py only assembles it.

- demo.py: build_demo(), the Blocks with every tab (models injectable);
- models.py: loading the palette, colour nets and segmenter (Hub fallback);
- uploads.py: which files a request may name, the photo input that enforces it, and user_error
  (a user's mistake: a message, no traceback in the server log);
- server.py: what the web server refuses before gradio sees a request (build_demo installs it);
- examples.py: example photos, found when a demo is built (never decoded then);
- render.py: every picture the app draws (overlays, colour maps, grids);
- store.py: result pictures written once each into gradio's cache folder, capped by age and bytes,
  downloaded under the photo's own name (download_name);
- colour_tab.py, segment_tab.py, inside_tab.py, model_tab.py: a tab each, its handlers and
  its create_tab(); report.py and replay_tab.py feed the Model tab; colour_handlers.py holds the
  Colourize tab's handlers (/colorize), inspector.py its pixel inspector.
"""
