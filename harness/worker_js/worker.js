#!/usr/bin/env node
'use strict';
/*
 * TF.js worker: `node harness/worker_js/worker.js JOB.json`, with NODE_PATH=<env>/node_modules so that
 * require('@tensorflow/tfjs') is the env's own pure-JS TF.js (CPU backend, no native add-on).
 *
 * Speaks the Python worker's protocol (harness/worker/main.py): one JSON event per line appended to
 * job.journal (fsynced per line): ready, start / attempt / done per item, exit. A crash loses only the
 * item in flight. Depends on nothing but node's standard library and @tensorflow/tfjs.
 */

const fs = require('fs');
const os = require('os');
const path = require('path');

const WORKER_VERSION = 'js2';
const TRAIN_EPOCHS = 3;
const GRAPH_WRAPPER_CLASS = 'TfcompatGraphModelLayer';

// ---------------------------------------------------------------------------------------------
// journal

function openJournal(file) {
  let torn = false;
  if (fs.existsSync(file)) {
    const size = fs.statSync(file).size;
    if (size > 0) {
      const fd = fs.openSync(file, 'r');
      const last = Buffer.alloc(1);
      fs.readSync(fd, last, 0, 1, size - 1);
      fs.closeSync(fd);
      torn = last[0] !== 0x0a;
    }
  }
  const fd = fs.openSync(file, 'a');
  if (torn) {
    fs.writeSync(fd, '\n'); // a killed writer's half line stays alone (the reader skips it)
  }
  return function write(event) {
    fs.writeSync(fd, JSON.stringify(sortKeys(event)) + '\n');
    fs.fsyncSync(fd);
  };
}

function sortKeys(value) {
  // like json.dumps(sort_keys=True); non-finite numbers become null (JSON has no NaN)
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value instanceof Date) return value.toISOString();
  if (value && typeof value === 'object') {
    const out = {};
    for (const k of Object.keys(value).sort()) {
      if (value[k] !== undefined) out[k] = sortKeys(value[k]);
    }
    return out;
  }
  if (typeof value === 'number' && !Number.isFinite(value)) return null;
  if (typeof value === 'bigint') return Number(value);
  return value;
}

function now() {
  return Date.now() / 1000;
}

function round3(x) {
  return Math.round(x * 1000) / 1000;
}

// ---------------------------------------------------------------------------------------------
// fault injection (same as the Python worker's _pause), plus a simulated crash

function sleepBlocking(seconds) {
  // really blocks the one JS thread (no event loop turns), so the orchestrator's timeout kills us
  const cell = new Int32Array(new SharedArrayBuffer(4));
  let left = seconds * 1000;
  while (left > 0) {
    const step = Math.min(left, 1000);
    Atomics.wait(cell, 0, 0, step);
    left -= step;
  }
}

function pauseIf(pause, text) {
  if (!pause || !text.includes(pause)) return;
  const once = process.env.TFCOMPAT_WORKER_PAUSE_ONCE; // a marker file: pause one time only
  if (!once || !fs.existsSync(once)) {
    if (once) fs.closeSync(fs.openSync(once, 'w'));
    sleepBlocking(parseFloat(process.env.TFCOMPAT_WORKER_PAUSE_S || '60'));
  }
}

function pyStr(value) {
  return value === null || value === undefined ? 'None' : String(value); // "%s" % None
}

// ---------------------------------------------------------------------------------------------
// console capture: tfjs warns through console.warn; everything still goes to the log (stderr)

const captures = [];

function formatArgs(args) {
  const util = require('util');
  return args.map((a) => (typeof a === 'string' ? a : util.inspect(a, {depth: 3}))).join(' ');
}

function installConsole() {
  for (const [name, label] of [['warn', 'warn'], ['error', 'error']]) {
    console[name] = (...args) => {
      const text = formatArgs(args);
      for (const c of captures) c.push(label + ': ' + text.trim());
      process.stderr.write(text + '\n');
    };
  }
  // nothing but the journal is data: stdout noise goes to the log too
  console.log = (...args) => process.stderr.write(formatArgs(args) + '\n');
  console.info = console.log;
}

async function captured(fn) {
  const messages = [];
  captures.push(messages);
  try {
    return {value: await fn(), messages: dedupe(messages)};
  } catch (err) {
    err.__captured = dedupe(messages);
    throw err;
  } finally {
    captures.splice(captures.indexOf(messages), 1);
  }
}

function dedupe(messages) {
  const seen = [];
  for (let m of messages) {
    m = String(m).trim().slice(0, 2000);
    if (m && !seen.includes(m)) seen.push(m);
    if (seen.length >= 20) break;
  }
  return seen;
}

function describe(err) {
  if (!(err instanceof Error)) {
    return {error_type: typeof err, message: String(err).slice(0, 2000), traceback: ''};
  }
  let type = err.constructor && err.constructor.name;
  if (!type || type === 'Error') type = err.name || 'Error';
  return {
    error_type: type,
    message: String(err.message || err).trim().slice(0, 2000),
    traceback: String(err.stack || '').slice(-4000),
  };
}

// ---------------------------------------------------------------------------------------------
// IO handlers: model.json + weight shards on the local filesystem (the pure-JS package has none)

const ARTIFACT_KEYS = ['modelTopology', 'format', 'generatedBy', 'convertedBy', 'signature',
  'userDefinedMetadata', 'modelInitializer', 'initializerSignature', 'trainingConfig'];

function toArrayBuffer(buf) {
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
}

function loadHandler(modelJsonPath) {
  return {
    load: async () => {
      const json = JSON.parse(fs.readFileSync(modelJsonPath, 'utf8'));
      const artifacts = {};
      for (const k of ARTIFACT_KEYS) {
        if (json[k] !== undefined) artifacts[k] = json[k];
      }
      if (json.weightsManifest != null) {
        const dir = path.dirname(modelJsonPath);
        const buffers = [];
        const specs = [];
        for (const group of json.weightsManifest) {
          for (const p of group.paths) buffers.push(fs.readFileSync(path.join(dir, p)));
          specs.push(...group.weights);
        }
        artifacts.weightSpecs = specs;
        artifacts.weightData = toArrayBuffer(Buffer.concat(buffers));
      }
      return artifacts;
    },
  };
}

function weightBytes(weightData) {
  if (weightData == null) return Buffer.alloc(0);
  if (Array.isArray(weightData)) { // tfjs 4: WeightData may be a list of buffers
    return Buffer.concat(weightData.map((b) => Buffer.from(b)));
  }
  return Buffer.from(weightData);
}

function saveHandler(dir) {
  return {
    save: async (artifacts) => {
      if (artifacts.modelTopology instanceof ArrayBuffer) {
        throw new Error('the model topology is binary (a GraphDef protobuf); this handler writes JSON only');
      }
      fs.mkdirSync(dir, {recursive: true});
      const data = weightBytes(artifacts.weightData);
      const json = {};
      for (const k of ARTIFACT_KEYS) {
        if (artifacts[k] != null) json[k] = artifacts[k];
      }
      json.weightsManifest = [{paths: ['weights.bin'], weights: artifacts.weightSpecs || []}];
      fs.writeFileSync(path.join(dir, 'weights.bin'), data);
      const text = JSON.stringify(json);
      fs.writeFileSync(path.join(dir, 'model.json'), text);
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(), modelTopologyType: 'JSON',
          modelTopologyBytes: text.length, weightDataBytes: data.length,
        },
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// .npy

function readNpy(tf, file) {
  const buf = fs.readFileSync(file);
  if (buf.readUInt8(0) !== 0x93 || buf.toString('latin1', 1, 6) !== 'NUMPY') {
    throw new Error(file + ' is not a .npy file');
  }
  const major = buf.readUInt8(6);
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order'\s*:\s*True/.test(header)) throw new Error(file + ': fortran_order arrays are not read');
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)[1];
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s).map((s) => parseInt(s, 10));
  const raw = buf.subarray(start + headerLen);
  const ab = toArrayBuffer(raw); // a fresh, aligned copy
  const n = shape.reduce((a, b) => a * b, 1);
  let values;
  let dtype;
  switch (descr) {
    case '<f4': values = new Float32Array(ab, 0, n); dtype = 'float32'; break;
    case '<f8': values = Float32Array.from(new Float64Array(ab, 0, n)); dtype = 'float32'; break;
    case '<i4': values = new Int32Array(ab, 0, n); dtype = 'int32'; break;
    case '<i8': values = Int32Array.from(new BigInt64Array(ab, 0, n), (v) => Number(v)); dtype = 'int32'; break;
    case '|b1': values = Uint8Array.from(new Uint8Array(ab, 0, n)); dtype = 'bool'; break;
    default: throw new Error(file + ': dtype ' + descr + ' is not read');
  }
  return tf.tensor(values, shape, dtype);
}

function writeNpy(file, tensorOrArray, shape) {
  let values;
  if (shape === undefined) {
    shape = tensorOrArray.shape;
    values = Float32Array.from(tensorOrArray.dataSync());
  } else {
    values = Float32Array.from(tensorOrArray);
  }
  const shapeText = shape.length === 1 ? '(' + shape[0] + ',)' : '(' + shape.join(', ') + ')';
  let header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shapeText + ', }';
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.writeUInt8(0x93, 0);
  pre.write('NUMPY', 1, 'latin1');
  pre.writeUInt8(1, 6);
  pre.writeUInt8(0, 7);
  pre.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(values.buffer)]));
}

// ---------------------------------------------------------------------------------------------
// helpers

function rmrf(p) {
  if (fs.rmSync) fs.rmSync(p, {recursive: true, force: true});
  else if (fs.existsSync(p)) fs.rmdirSync(p, {recursive: true});
}

function scratchDir() {
  return fs.mkdtempSync(path.join(process.cwd(), 'tfjs-scratch-'));
}

function singleTensor(tf, out) {
  if (out instanceof tf.Tensor) return out;
  const list = Array.isArray(out) ? out : (out && typeof out === 'object' ? Object.values(out) : []);
  if (list.length === 1 && list[0] instanceof tf.Tensor) return list[0];
  throw new Error('the model returned ' + list.length + ' outputs; the harness compares a single tensor');
}

function tfjsVersion(tf) {
  return (tf.version && (tf.version.tfjs || tf.version['tfjs-core'])) || null;
}

function fixtureName(item) {
  return item.fixture_module || item.fixture;
}

// ---------------------------------------------------------------------------------------------
// the graph-model wrapper (rung wrap_tf_model): a LayersModel holding the graph and its weights

function defineGraphWrapper(tf) {
  const map = tf.serialization.SerializationMap.getMap().classNameMap;
  if (map[GRAPH_WRAPPER_CLASS]) return map[GRAPH_WRAPPER_CLASS][0];

  class TfcompatGraphModelLayer extends tf.layers.Layer {
    // config.graphHex: hex of the JSON {modelTopology, signature, ..., weights: [{name, shape, dtype}]}
    // (hex: tfjs snake/camel-cases every string of a layer config, hex survives both ways)
    constructor(config) {
      super(config);
      this.graphHex = config.graphHex;
      this.graphOutputShape = config.graphOutputShape;
      this.graph = JSON.parse(Buffer.from(this.graphHex, 'hex').toString('utf8'));
      this.executable = null;
    }

    build(inputShape) {
      this.graphWeights = this.graph.weights.map((spec, i) => this.addWeight(
        'w' + i, spec.shape, spec.dtype, tf.initializers.zeros(), undefined, false));
      this.built = true;
    }

    computeOutputShape(inputShape) {
      return this.graphOutputShape;
    }

    executableGraph() {
      if (this.executable == null) {
        const buffers = this.graphWeights.map((v) => {
          const values = v.read().dataSync();
          return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
        });
        const artifacts = {weightSpecs: this.graph.weights, weightData: toArrayBuffer(Buffer.concat(buffers))};
        for (const k of ARTIFACT_KEYS) {
          if (this.graph[k] != null) artifacts[k] = this.graph[k];
        }
        const g = tf.loadGraphModelSync(artifacts);
        // built inside predict()'s tidy: keep the graph's weight tensors past it
        for (const list of Object.values(g.executor.weightMap)) list.forEach((t) => tf.keep(t));
        this.executable = g;
      }
      return this.executable;
    }

    call(inputs) {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      return singleTensor(tf, this.executableGraph().predict(x));
    }

    getConfig() {
      return Object.assign({}, super.getConfig(), {
        graphHex: this.graphHex, graphOutputShape: this.graphOutputShape});
    }

    static get className() {
      return GRAPH_WRAPPER_CLASS;
    }
  }
  tf.serialization.registerClass(TfcompatGraphModelLayer);
  return TfcompatGraphModelLayer;
}

function wrapGraphModel(tf, g, outShape) {
  const Wrapper = defineGraphWrapper(tf);
  const artifacts = g.artifacts;
  if (artifacts == null || artifacts.modelTopology == null) {
    throw new Error('the GraphModel keeps no artifacts to wrap');
  }
  const weightMap = tf.io.decodeWeights(artifacts.weightData, artifacts.weightSpecs);
  const names = Object.keys(weightMap);
  const graph = {weights: names.map((n) => ({name: n, shape: weightMap[n].shape, dtype: weightMap[n].dtype}))};
  for (const k of ARTIFACT_KEYS) {
    if (artifacts[k] != null && k !== 'trainingConfig') graph[k] = artifacts[k];
  }
  const inShape = g.inputs[0].shape;
  if (!inShape) throw new Error('the graph\'s input has no static shape');
  const input = tf.input({shape: inShape.slice(1).map((d) => (d < 0 ? null : d)), dtype: g.inputs[0].dtype});
  const layer = new Wrapper({
    name: 'graph_model', graphHex: Buffer.from(JSON.stringify(graph), 'utf8').toString('hex'),
    graphOutputShape: [null].concat(outShape.slice(1)),
  });
  const output = layer.apply(input);
  const model = tf.model({inputs: input, outputs: output, name: 'wrapped_graph_model'});
  layer.setWeights(names.map((n) => weightMap[n]));
  return model;
}

// ---------------------------------------------------------------------------------------------
// check phase

function compare(tf, got, want, tol) {
  // numpy.allclose(got, want, rtol, atol): |got - want| <= atol + rtol * |want|
  const g = got.dataSync();
  const w = want.dataSync();
  let maxAbs = 0;
  let maxRel = 0;
  let ok = true;
  for (let i = 0; i < w.length; i++) {
    const d = Math.abs(g[i] - w[i]);
    const rel = d / Math.max(Math.abs(w[i]), 1e-12);
    if (!(d <= tol.atol + tol.rtol * Math.abs(w[i]))) ok = false; // NaN fails too
    if (!(d <= maxAbs)) maxAbs = d;
    if (!(rel <= maxRel)) maxRel = rel;
  }
  return {ok, maxAbs, maxRel};
}

function shapeText(shape) {
  return '(' + shape.join(', ') + (shape.length === 1 ? ',)' : ')');
}

function fmtG(x, precision = 3) {
  // Python's "%.<precision>g" (the Python worker's messages use %.3g and %g)
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return '0';
  const exp = Math.floor(Math.log10(Math.abs(Number(x.toPrecision(precision)))));
  const strip = (t) => (t.includes('.') ? t.replace(/0+$/, '').replace(/\.$/, '') : t);
  if (exp < -4 || exp >= precision) {
    const [mant, e] = x.toExponential(precision - 1).split('e');
    const n = parseInt(e, 10);
    return strip(mant) + 'e' + (n < 0 ? '-' : '+') + String(Math.abs(n)).padStart(2, '0');
  }
  return strip(x.toFixed(Math.max(0, precision - 1 - exp)));
}

function judgePredictions(tf, got, want, tols, record) {
  if (got.shape.join(',') !== want.shape.join(',')) {
    record.checks.predictions = false;
    record.outcome = 'wrong-output';
    record.message = 'output shape ' + shapeText(got.shape) + " differs from the producer's " + shapeText(want.shape);
    return false;
  }
  const c = compare(tf, got, want, tols);
  record.max_abs_diff = c.maxAbs;
  record.max_rel_diff = c.maxRel;
  record.checks.predictions = c.ok;
  if (!c.ok) {
    record.outcome = 'wrong-output';
    record.message = "loaded without error, but predictions differ from the producer's: max |diff| " +
      fmtG(c.maxAbs) + ', max rel diff ' + fmtG(c.maxRel) + ' (atol ' + fmtG(tols.atol, 6) + ', rtol ' + fmtG(tols.rtol, 6) + ')';
  }
  return c.ok;
}

function predictLayers(tf, model, x) {
  return singleTensor(tf, model.predict(x));
}

function predictGraph(tf, model, x, meta) {
  if (typeof model.predict === 'function') {
    try {
      return singleTensor(tf, model.predict(x));
    } catch (err) {
      if (!(model.inputs && model.inputs[0] && model.inputs[0].name)) throw err;
    }
  }
  const name = (model.inputs && model.inputs[0] && model.inputs[0].name) ||
    (meta.graph_signature && (meta.graph_signature.inputs || [])[0]);  // signature key names, sorted
  return singleTensor(tf, model.execute({[name]: x}));
}

function classNameOf(layer) {
  try {
    if (typeof layer.getClassName === 'function') return layer.getClassName();
  } catch (err) { /* fall through */ }
  return layer.constructor && layer.constructor.className;
}

function classesCheck(model, classes) {
  const have = (model.layers || []).map(classNameOf);
  return Object.keys(classes).every((name) => have.some(
    (c) => c === name || (typeof c === 'string' && c.endsWith('>' + name))));
}

async function graphSaveRoundTrip(tf, model, x, meta, want, tols) {
  // the save question as a real check: GraphModel.save, load it back, predict again
  if (typeof model.save !== 'function') {
    return {ok: false, message: 'GraphModel.save does not exist in this TF.js'};
  }
  const dir = scratchDir();
  try {
    try {
      await model.save(saveHandler(dir));
    } catch (err) {
      const d = describe(err);
      return {ok: false, message: 'GraphModel.save failed: ' + d.error_type + ': ' + d.message, error: d};
    }
    let again;
    try {
      again = await tf.loadGraphModel(loadHandler(path.join(dir, 'model.json')));
    } catch (err) {
      const d = describe(err);
      return {ok: false, message: 'the saved GraphModel does not load back: ' + d.error_type + ': ' + d.message, error: d};
    }
    let got;
    try {
      got = predictGraph(tf, again, x, meta);
    } catch (err) {
      const d = describe(err);
      return {ok: false, message: 'the saved GraphModel, loaded back, does not run: ' + d.error_type + ': ' + d.message, error: d};
    }
    return differently(tf, got, want, tols, 'saved by GraphModel.save and loaded back');
  } finally {
    rmrf(dir);
  }
}

function differently(tf, got, want, tols, what) {
  // a copy that runs but predicts otherwise is silent corruption (wrong-output), not a lost save
  const sub = {checks: {}};
  if (judgePredictions(tf, got, want, tols, sub)) return {ok: true};
  return {ok: false, wrong: true, max_abs_diff: sub.max_abs_diff, max_rel_diff: sub.max_rel_diff,
    message: 'the model loads and predicts the same, but the copy ' + what + ' predicts differently: ' +
      sub.message.replace("loaded without error, but predictions differ from the producer's: ", '')};
}

async function wrapRoundTrip(tf, g, x, meta, want, tols) {
  // rung wrap_tf_model: wrap the GraphModel in a LayersModel, save that, load it back, predict
  const wrapped = wrapGraphModel(tf, g, want.shape);
  const first = differently(tf, predictLayers(tf, wrapped, x), want, tols, 'wrapped in a LayersModel');
  if (!first.ok) return first;
  const dir = scratchDir();
  try {
    let again;
    try {
      await wrapped.save(saveHandler(dir));
      again = await tf.loadLayersModel(loadHandler(path.join(dir, 'model.json')));
    } catch (err) {
      const d = describe(err);
      return {ok: false, message: 'the wrapped model does not save and load back: ' + d.error_type + ': ' + d.message, error: d};
    }
    return differently(tf, predictLayers(tf, again, x), want, tols, 'wrapped in a LayersModel, saved and loaded back,');
  } finally {
    rmrf(dir);
  }
}

function registryNames(tf) {
  return Object.keys(tf.serialization.SerializationMap.getMap().classNameMap).sort();
}

function fixturesAbsent(tf, state) {
  const loaded = Object.keys(require.cache).some((p) => /[\\/]fixtures[\\/][^\\/]+\.js$/.test(p));
  const now = registryNames(tf);
  const extra = now.filter((n) => !state.registryAtStart.includes(n));
  return !loaded && extra.length === 0;
}

async function attemptOnce(tf, state, item, meta, arrays, remedy, loader) {
  const tols = item.tolerances;
  const ptol = tols.predictions || tols;
  const record = {remedy, loader, outcome: null, lost: [], checks: {}, tolerances: tols};
  const artifact = path.join(item.artifact_dir, meta.artifact);
  const absentBefore = state.mode === 'plain' ? fixturesAbsent(tf, state) : null;
  let messages = [];
  try {
    const res = await captured(async () => {
      tf.engine().startScope();
      try {
        await attemptBody(tf, item, meta, arrays, remedy, loader, artifact, ptol, record);
      } finally {
        tf.engine().endScope();
      }
    });
    messages = res.messages;
  } catch (err) {
    messages = err.__captured || [];
    Object.assign(record, {outcome: 'load-error'}, describe(err));
    if (record.__loaded) record.message = 'loaded, but using the model failed: ' + record.message;
  }
  delete record.__loaded;
  if (state.mode === 'plain') record.fixtures_absent = Boolean(absentBefore && fixturesAbsent(tf, state));
  record.warnings = messages;
  return record;
}

async function attemptBody(tf, item, meta, arrays, remedy, loader, artifact, ptol, record) {
  if (remedy === 'js_register_class') {
    const fixture = fixtureModule(item);
    if (typeof fixture.register !== 'function') {
      throw new Error(item.fixture_js + ' exports no register(tf)');
    }
    fixture.register(tf);
  }
  const model = loader === 'layers'
    ? await tf.loadLayersModel(loadHandler(artifact))
    : await tf.loadGraphModel(loadHandler(artifact));
  record.__loaded = true;
  const x = arrays.x_eval;
  const want = arrays.outputs;
  const got = loader === 'layers' ? predictLayers(tf, model, x) : predictGraph(tf, model, x, meta);
  if (!judgePredictions(tf, got, want, ptol, record)) return;
  const promises = meta.promises || [];
  const notes = [];
  if (loader === 'layers' && promises.includes('custom_classes') && meta.classes &&
      Object.keys(meta.classes).length) {
    record.checks.classes = classesCheck(model, meta.classes);
    if (!record.checks.classes) {
      record.lost.push('custom_classes');
      notes.push('custom classes ' + Object.keys(meta.classes).join(', ') + ' are not among the loaded layers');
    }
  }
  if (loader === 'graph') {
    const s = remedy === 'wrap_tf_model'
      ? await wrapRoundTrip(tf, model, x, meta, want, ptol)
      : await graphSaveRoundTrip(tf, model, x, meta, want, ptol);
    record.checks.save = s.ok;
    if (s.wrong) {
      Object.assign(record, {outcome: 'wrong-output', lost: [], message: s.message,
        max_abs_diff: s.max_abs_diff, max_rel_diff: s.max_rel_diff});
      return;
    }
    if (!s.ok) {
      record.lost.push('js_save');
      notes.push(s.message);
    }
  }
  record.lost.sort();
  record.outcome = record.lost.length ? 'degraded' : 'pass';
  if (record.lost.length) {
    record.message = 'loaded and predicts the same, but lost: ' + record.lost.join(', ') +
      (notes.length ? ' (' + notes.join('; ') + ')' : '');
  }
}

async function probePlainSave(tf, item, meta, arrays) {
  // remedies process, tfjs_graph: does the plain GraphModel.save round trip work? (not an attempt)
  const artifact = path.join(item.artifact_dir, meta.artifact);
  tf.engine().startScope();
  try {
    const model = await tf.loadGraphModel(loadHandler(artifact));
    const ptol = item.tolerances.predictions || item.tolerances;
    const s = await graphSaveRoundTrip(tf, model, arrays.x_eval, meta, arrays.outputs, ptol);
    return s;
  } catch (err) {
    return {ok: false, message: 'the plain GraphModel does not load: ' + describe(err).message};
  } finally {
    tf.engine().endScope();
  }
}

function fixtureModule(item) {
  return require(path.resolve(item.fixture_js)); // remedies process only: the plain one never loads fixtures
}

function ladder(item, mode) {
  const loader = item.format === 'tfjs_graph' ? 'graph' : 'layers';
  if (mode === 'plain') return [[null, loader]];
  if (item.format === 'tfjs_layers') {
    // the remedy is registering the fixture's JS classes: only where its .js has a register(tf)
    if (!item.fixture_js) return [];
    try {
      if (typeof fixtureModule(item).register !== 'function') return [];
    } catch (err) { /* the rung's attempt reports the fixture's own error */ }
    return [['js_register_class', 'layers']];
  }
  if (item.format === 'tfjs_graph') return [['wrap_tf_model', 'graph']];
  return [];
}

async function checkItem(tf, state, item, note) {
  const mode = state.mode;
  const meta = JSON.parse(fs.readFileSync(path.join(item.artifact_dir, 'meta.json'), 'utf8'));
  if (meta.status !== 'saved') return {attempts: [], mode, skipped: meta.status};
  const result = {attempts: [], mode};
  if (!['tfjs_layers', 'tfjs_graph'].includes(item.format)) {
    result.unsupported = 'a TF.js env loads only tfjs_layers and tfjs_graph';
    return result;
  }
  const arrays = {};
  let inFlight = null;
  try {
    let rungs = ladder(item, mode);
    arrays.x_eval = tf.keep(readNpy(tf, path.join(item.artifact_dir, 'x_eval.npy')));
    arrays.outputs = tf.keep(readNpy(tf, path.join(item.artifact_dir, 'outputs.npy')));
    if (mode === 'remedies' && item.format === 'tfjs_graph') {
      const probe = await probePlainSave(tf, item, meta, arrays);
      result.plain_save = probe.ok;
      // the plain rung saves already: no remedy to try (TFCOMPAT_WORKER_JS_WRAP=always tries it anyway)
      if (probe.ok && process.env.TFCOMPAT_WORKER_JS_WRAP !== 'always') rungs = [];
    }
    for (const [remedy, loader] of rungs) {
      inFlight = [remedy, loader];
      note(remedy, null);
      const attempt = await attemptOnce(tf, state, item, meta, arrays, remedy, loader);
      inFlight = null;
      result.attempts.push(attempt);
      note(remedy, attempt);
      if (attempt.outcome === 'pass') break;
    }
  } catch (err) {
    // outside an attempt's own guard (reference arrays unreadable, ...): that rung's load-error
    const [remedy, loader] = inFlight || ladder(item, mode)[0] || [null, item.format === 'tfjs_graph' ? 'graph' : 'layers'];
    const attempt = Object.assign({remedy, loader, outcome: 'load-error', lost: [], checks: {},
      tolerances: item.tolerances, warnings: []}, describe(err));
    attempt.message = 'the check could not run: ' + attempt.message;
    if (!inFlight) note(remedy, null);
    result.attempts.push(attempt);
    note(remedy, attempt);
  } finally {
    for (const t of Object.values(arrays)) t.dispose();
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// save phase (the TF.js producer)

async function saveItem(tf, item) {
  const outDir = item.out_dir;
  rmrf(outDir);
  fs.mkdirSync(outDir, {recursive: true});
  const name = fixtureName(item);
  const meta = {
    fixture: item.fixture, format: item.format, promises: ['architecture', 'weights', 'custom_classes'],
    status: 'saved', tfjs_version: tfjsVersion(tf), keras_version: null, keras3: false, tf_version: null,
    warnings: [],
  };
  const finish = () => {
    fs.writeFileSync(path.join(outDir, 'meta.json'), JSON.stringify(sortKeys(meta), null, 1));
    return meta;
  };
  if (item.format !== 'tfjs_layers') {
    Object.assign(meta, {status: 'not-applicable',
      reason: 'a TF.js env saves only tfjs_layers (tf.LayersModel.save); Keras files of its model come from the converter env',
      source: 'https://js.tensorflow.org/api/latest/#tf.LayersModel.save'});
    return finish();
  }
  let fixture = null;
  if (item.fixture_js && fs.existsSync(item.fixture_js)) {
    try {
      fixture = require(path.resolve(item.fixture_js));
    } catch (err) {
      Object.assign(meta, {status: 'save-error'}, describe(err));
      return finish();
    }
  }
  if (!fixture || typeof fixture.build !== 'function') {
    Object.assign(meta, {status: 'not-applicable', reason: 'fixtures/' + name + '.js has no TF.js build()'});
    return finish();
  }
  let arrays;
  try {
    const res = await captured(async () => {
      if (typeof fixture.register === 'function') fixture.register(tf);
      const data = fixture.data(tf);
      const model = fixture.build(tf);
      await model.fit(data.x_train, data.y_train, {epochs: TRAIN_EPOCHS, batchSize: 8, shuffle: false, verbose: 0});
      const outputs = predictLayers(tf, model, data.x_eval);
      const classes = {};
      for (const cls of fixture.CLASSES || []) {
        if ((model.layers || []).some((l) => classNameOf(l) === cls)) classes[cls] = 'js:' + cls;
      }
      let withOptimizer = true;
      try {
        await model.save(saveHandler(path.join(outDir, 'tfjs_layers')), {includeOptimizer: true});
      } catch (err) {
        // an older TF.js that cannot save the optimizer: save without it, say so
        console.warn('save with includeOptimizer failed (' + describe(err).message + '); saved without it');
        withOptimizer = false;
        await model.save(saveHandler(path.join(outDir, 'tfjs_layers')));
      }
      // the producer's reference for "one resumed training step", taken after saving
      const xb = data.x_train.slice([0, 0], [8, data.x_train.shape[1]]);
      const yb = data.y_train.slice([0, 0], [8, data.y_train.shape[1]]);
      await model.trainOnBatch(xb, yb);
      const resumed = predictLayers(tf, model, data.x_eval);
      return {data, outputs, resumed, classes, withOptimizer};
    });
    arrays = res.value;
    meta.warnings = res.messages;
  } catch (err) {
    Object.assign(meta, {status: 'save-error', warnings: err.__captured || []}, describe(err));
    return finish();
  }
  writeNpy(path.join(outDir, 'x_train.npy'), arrays.data.x_train);
  writeNpy(path.join(outDir, 'y_train.npy'), arrays.data.y_train);
  writeNpy(path.join(outDir, 'x_eval.npy'), arrays.data.x_eval);
  writeNpy(path.join(outDir, 'outputs.npy'), arrays.outputs);
  writeNpy(path.join(outDir, 'resumed.npy'), arrays.resumed);
  Object.assign(meta, {artifact: 'tfjs_layers/model.json', classes: arrays.classes, optimizer: null,
    weights_digest: [], functions: {}, include_optimizer: arrays.withOptimizer});
  return finish();
}

// ---------------------------------------------------------------------------------------------

async function main(argv) {
  const job = JSON.parse(fs.readFileSync(argv[2], 'utf8'));
  const write = openJournal(job.journal);
  installConsole();
  const t0 = Date.now();
  const tf = require('@tensorflow/tfjs');
  await tf.setBackend('cpu');
  await tf.ready();
  try {
    tf.backend().firstUse = false; // the cpu backend's "Hi, looks like you are running TF.js in Node" banner
  } catch (err) { /* no such flag in this version */ }
  const importS = round3((Date.now() - t0) / 1000);
  let tfjsPkg = null;
  try {
    tfjsPkg = require('@tensorflow/tfjs/package.json').version;
  } catch (err) {
    tfjsPkg = tfjsVersion(tf);
  }
  const state = {mode: job.mode, registryAtStart: registryNames(tf)};
  let ifaces = null;
  try {
    ifaces = Object.keys(os.networkInterfaces()).sort();
  } catch (err) { /* none visible */ }
  write({
    event: 'ready', pid: process.pid, import_s: importS, worker_version: WORKER_VERSION,
    versions: {
      node: process.versions.node, tfjs: tfjsVersion(tf), backend: tf.getBackend(), python: null,
      tensorflow: null, keras: null, keras_flavour: 'tfjs', packages: {'@tensorflow/tfjs': tfjsPkg},
    },
    phase: job.phase, mode: job.mode === undefined ? null : job.mode, net_interfaces: ifaces,
  });
  const parent = process.ppid;
  const pause = process.env.TFCOMPAT_WORKER_PAUSE || '';
  const crash = process.env.TFCOMPAT_WORKER_CRASH || '';
  for (const item of job.items) {
    if (process.ppid !== parent) return 3; // the orchestrator died: --resume redoes what is unfinished
    write({event: 'start', key: item.key, t: now()});
    if (crash && item.key.includes(crash)) {
      process.exit(7); // simulated crash right after "start"
    }
    if (pause && !pause.includes('|rung:')) pauseIf(pause, item.key);
    const t = Date.now();
    let result;
    if (job.phase === 'save') {
      result = await saveItem(tf, item);
    } else {
      const note = (remedy, attempt) => {
        write({event: 'attempt', key: item.key, remedy, result: attempt});
        if (attempt === null && pause && pause.includes('|rung:')) {
          pauseIf(pause, item.key + '|rung:' + pyStr(remedy));
        }
      };
      try {
        result = await checkItem(tf, state, item, note);
      } catch (err) {
        // outside any attempt (meta.json unreadable, ...): the item's result says so
        result = Object.assign({attempts: [], mode: job.mode, harness_error: true}, describe(err));
      }
    }
    write({event: 'done', key: item.key, duration_s: round3((Date.now() - t) / 1000), result});
  }
  write({event: 'exit'});
  return 0;
}

process.on('unhandledRejection', (reason) => {
  process.stderr.write('tfcompat js worker: unhandled rejection: ' + ((reason && reason.stack) || reason) + '\n');
});

main(process.argv).then((code) => {
  process.exitCode = code;
  // tfjs may leave nothing pending, but do not wait on stray timers either
  setImmediate(() => process.exit(code));
}, (err) => {
  process.stderr.write('tfcompat js worker: ' + ((err && err.stack) || err) + '\n');
  const full = err && (err.code === 'ENOSPC' || err.code === 'EDQUOT' || err.code === 'EFBIG');
  process.exit(full ? 28 : 1);
});
