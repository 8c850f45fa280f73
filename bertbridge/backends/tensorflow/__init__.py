"""The TensorFlow backend: BERT in plain TensorFlow, reading and writing the shared artifact format."""
