"""IRC lines shaped like those Twitch sends (tags trimmed to what matters; ids made up)."""

from __future__ import annotations

CH = "#dallas"
USER_TAGS = (
    "badge-info=subscriber/8;badges=moderator/1,subscriber/6;color=#0D4200;display-name=Ronni;"
    "emotes=;first-msg=0;flags=;mod=1;room-id=12826;subscriber=1;tmi-sent-ts=1642696567751;"
    "turbo=0;user-id=1337;user-type=mod"
)


def privmsg(
    text: str, msg_id: str = "b34ccfc7-4977-403a-8a94-33c6bac34fb8", bits: int = 0,
    reply_to: str = "", emote_only: bool = False,
) -> str:  # fmt: skip
    tags = f"{USER_TAGS};id={msg_id}"
    if bits:
        tags += f";bits={bits}"
    if reply_to:
        tags += f";reply-parent-display-name={reply_to};reply-parent-msg-id=p1;reply-parent-user-login={reply_to.lower()}"
    if emote_only:
        tags += ";emote-only=1;emotes=25:0-4"
    return f"@{tags} :ronni!ronni@ronni.tmi.twitch.tv PRIVMSG {CH} :{text}"


def usernotice(
    kind: str, extra: str = "", text: str = "", msg_id: str = "n1", login: str = "ronni"
) -> str:
    tags = f"{USER_TAGS};id={msg_id};login={login};msg-id={kind}"
    if extra:
        tags += ";" + extra
    tail = f" :{text}" if text else ""
    return f"@{tags} :tmi.twitch.tv USERNOTICE {CH}{tail}"


def resub(months: int = 6, plan: str = "1000", text: str = "", kind: str = "resub") -> str:
    extra = (
        f"msg-param-cumulative-months={months};msg-param-should-share-streak=0;"
        f"msg-param-sub-plan={plan};msg-param-sub-plan-name=Channel\\sSubscription\\s(dallas);"
        f"system-msg=ronni\\ssubscribed\\sfor\\s{months}\\smonths!"
    )
    return usernotice(kind, extra, text, msg_id=f"sub-{months}-{plan}")


def submysterygift(count: int = 5, community: str = "c77") -> str:
    extra = (
        f"msg-param-mass-gift-count={count};msg-param-origin-id={community};"
        f"msg-param-community-gift-id={community};msg-param-sender-count={count};"
        f"msg-param-sub-plan=1000;system-msg=ronni\\sis\\sgifting\\s{count}\\sTier\\s1\\sSubs!"
    )
    return usernotice("submysterygift", extra, msg_id=f"mass-{community}")


def subgift(recipient: str, community: str = "", msg_id: str = "g1") -> str:
    extra = (
        f"msg-param-recipient-display-name={recipient};msg-param-recipient-id=99;"
        f"msg-param-recipient-user-name={recipient.lower()};msg-param-sub-plan=1000;"
        f"msg-param-months=1;system-msg=ronni\\sgifted\\sa\\sTier\\s1\\ssub\\sto\\s{recipient}!"
    )
    if community:
        extra += f";msg-param-community-gift-id={community};msg-param-origin-id={community}"
    return usernotice("subgift", extra, msg_id=msg_id)


def raid(viewers: int = 42) -> str:
    extra = (
        f"msg-param-displayName=TestChannel;msg-param-login=testchannel;"
        f"msg-param-viewerCount={viewers};"
        f"system-msg={viewers}\\sraiders\\sfrom\\sTestChannel\\shave\\sjoined!"
    )
    return usernotice("raid", extra, msg_id="raid-1", login="testchannel")


def clearmsg(target: str) -> str:
    return f"@login=ronni;room-id=;target-msg-id={target};tmi-sent-ts=1642720582342 :tmi.twitch.tv CLEARMSG {CH} :HeyGuys"


def clearchat(user: str = "", user_id: str = "", duration: int = 0) -> str:
    if not user:
        return f"@room-id=12826;tmi-sent-ts=1642715756806 :tmi.twitch.tv CLEARCHAT {CH}"
    tags = f"room-id=12826;target-user-id={user_id};tmi-sent-ts=1642715695392"
    if duration:
        tags = f"ban-duration={duration};" + tags
    return f"@{tags} :tmi.twitch.tv CLEARCHAT {CH} :{user}"
