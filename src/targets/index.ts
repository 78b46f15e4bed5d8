// Target discovery: which files hold TLS functions to probe, and where in them.
export type { TlsFlavour, ProbeFunction, ProbeTarget } from './types.js';
export { TargetError } from './errors.js';
export {
  systemTargets,
  processTargets,
  fileTarget,
  libraryDirs,
  strippedReason,
  LIBRARY_DIRS,
  ANDROID_LIBRARY_DIRS,
  LIBSSL_NAME,
  EXECUTABLE_NAMES,
} from './discover.js';
export type { SystemDiscoveryOptions, ProcessDiscoveryOptions, SkippedFile } from './discover.js';
export { LIBRARY_FAMILIES, familyOf, familyOfFileName, isTlsLibraryName } from './families.js';
export type { LibraryFamily } from './families.js';
export { dedupeTargets } from './dedupe.js';
export { processBlindspots, formatBlindspots, embeddedTls, EMBEDDED_TLS } from './blindspots.js';
export type { Blindspot } from './blindspots.js';
export { hostArch, archLabel, foreignArchReason } from './arch.js';
export type { ElfArch } from './arch.js';
export { clearAnalysisCache } from './analyze.js';
export { readLdCache, parseLdCache, parseLdconfigOutput, LdCacheFormatError, LD_CACHE_PATH } from './ld-cache.js';
export type { LdCache, LdCacheEntry } from './ld-cache.js';
export { parseProcMaps, mappedFiles, readProcMaps } from './proc-maps.js';
export type { MapRegion, MappedFile } from './proc-maps.js';
export { FLAVOUR_RULES, detectFlavour, flavourFromText } from './flavour.js';
export type { FlavourRule, FlavourInfo } from './flavour.js';
export {
  GO_TLS_FUNCTIONS,
  GO_TLS_READ,
  GO_TLS_WRITE,
  GO_UNSUPPORTED_HINT,
  GoProgramError,
  formatGoNotice,
  goProgramMessage,
  goProgramsHint,
  goProgramName,
  onlyGoProgramsError,
} from './go.js';
export type { GoProgram, GoStatus, GoTlsFunction } from './go.js';
export { GO_REGISTER_ABI, goProbeTarget, planGoProbes } from './go-probes.js';
export type { GoProbePlan, GoProbeSite, GoRegister, GoRegisterAbi } from './go-probes.js';
export { androidTargets, parsePackagesList, appIdOf, ANDROID_LIB64_DIRS, ANDROID_APP_DIR, PACKAGES_LIST } from './android.js';
export type { AndroidTarget, AndroidDiscovery, AndroidDiscoveryOptions, AndroidPackage } from './android.js';
export { apkLibraries, ApkFormatError } from './apk.js';
export type { ApkLibrary } from './apk.js';
