// Stands in for @daily-co/daily-js (see build.mjs): the widget never uses Daily.
const refuse = () => {
  throw new Error("voxline widget: Daily media is not bundled");
};
export default { getCallInstance: () => null, createCallObject: refuse };
