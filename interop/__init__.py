"""tfunite.interop: owners inside TensorFlow's and Keras' own loops.

Keras `fit` and `.keras`/`.weights.h5` saving (`keras_layer`), SavedModel/ONNX export
(`export`) and TensorBoard summaries (`summaries`). Depends on core (and on Keras or
TensorFlow's own modules); core never imports it. Its public names are reached as
`tu.<name>`, loaded on first use.
"""
