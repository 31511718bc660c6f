"""The Gemma 4 brain: E2B/E4B over ONNX Runtime with native audio input and function calling.

Public entry points: ``make_gemma_brain(settings)`` (brain.py), ``check_model_dir``
(files.py), ``pull`` (pull.py) and the CLI helpers ``models_pull`` / ``models_check``
(cli.py). Heavy imports (onnxruntime, tokenizers, huggingface_hub) happen only when a
model is loaded, checked or pulled.
"""
