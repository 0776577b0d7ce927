#!/usr/bin/env node
import "../dist/sim.js";
