"""The web UI: the studio in the browser (Gradio). A shell over `voxmith.Studio`; core code never
imports gradio, and progress reaches the page through the core's plain callbacks."""
