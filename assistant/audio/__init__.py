"""The audio front end: sources -> frames -> VAD + endpointer -> Utterances, and playback.

- wav: read any PCM WAV as 16 kHz mono int16 (AudioError for bad files); write WAVs.
- pcm: mono mix-down, soxr resampling, fixed-size framing.
- sources: WavFileSource, MicrophoneSource (PortAudio, reopened with backoff),
  CommandSource (arecord-style), StdinSource; list_devices.
- vad: WebRtcVad, SileroVad (ONNX via onnxruntime), make_vad.
- endpointer: the pure time-based endpointing state machine.
- frontend: Segmenter (frames -> Utterances with pre-roll) and utterances_from_file.
- playback: play() in short blocks, stoppable by a cancel event.

Submodules import sounddevice, webrtcvad and onnxruntime lazily, so importing this
package needs none of them.
"""
